# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client certificates for Magnum clusters and the kubeconfig built from them.

Magnum signs a CSR with the cluster's CA (POST /v1/certificates). The
kubeconfig follows `openstack coe cluster config`: with TLS, a cluster entry
holding the CA and a user 'admin' holding the signed certificate and its key;
without TLS, only the server address.
"""

import base64
import datetime
import traceback

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

# Kubernetes maps CN to the user and O to groups: system:masters is cluster-admin.
CLIENT_CN = 'admin'
CLIENT_ORG = 'system:masters'


def new_key_and_csr():
    """(key PEM, CSR PEM) for a new RSA-2048 key, CN=admin, O=system:masters."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, CLIENT_CN),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, CLIENT_ORG),
    ])).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode('ascii')
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode('ascii')


def _not_after(cert):
    value = getattr(cert, 'not_valid_after_utc', None)
    if value is None:
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def cert_expiry(cert_pem):
    """ISO expiry of a PEM certificate, or None when it cannot be read."""
    try:
        return _not_after(x509.load_pem_x509_certificate(_bytes(cert_pem))).isoformat()
    except Exception:  # noqa: BLE001 - unreadable means "unknown"
        return None


def _bytes(text):
    return text.encode('ascii') if isinstance(text, str) else text


def credentials_problem(cert_pem, key_pem, ca_pem, renew_before_days, now=None):
    """Why existing client credentials cannot be reused, or None when they can.

    They must be readable, belong together, be signed by the cluster's current
    CA (a rotated CA invalidates them) and stay valid for renew_before_days.
    """
    now = now or _now()
    try:
        cert = x509.load_pem_x509_certificate(_bytes(cert_pem))
    except Exception as exc:  # noqa: BLE001
        return 'the client certificate cannot be read (%s)' % exc
    try:
        key = serialization.load_pem_private_key(_bytes(key_pem), password=None)
    except Exception as exc:  # noqa: BLE001
        return 'the client key cannot be read (%s)' % exc
    if key.public_key().public_numbers() != cert.public_key().public_numbers():
        return 'the client key does not belong to the client certificate'
    try:
        ca = x509.load_pem_x509_certificate(_bytes(ca_pem))
    except Exception as exc:  # noqa: BLE001
        return "the cluster's CA cannot be read (%s)" % exc
    if cert.issuer != ca.subject:
        return "the client certificate was not issued by the cluster's current CA"
    verify = getattr(cert, 'verify_directly_issued_by', None)
    if verify is not None:
        try:
            verify(ca)
        except Exception:  # noqa: BLE001 - any failure means "not signed by this CA"
            return "the client certificate's signature does not verify with the cluster's current CA"
    expiry = _not_after(cert)
    if expiry <= now:
        return 'the client certificate expired at %s' % expiry.isoformat()
    if expiry - now < datetime.timedelta(days=renew_before_days):
        return 'the client certificate expires at %s, within renew_before_days (%d)' % (
            expiry.isoformat(), renew_before_days)
    return None


def b64(text):
    return base64.b64encode(_bytes(text)).decode('ascii')


def unb64(text):
    try:
        return base64.b64decode(text).decode('ascii')
    except Exception:  # noqa: BLE001 - garbage reads as "no data"
        return None


def build_kubeconfig(cluster_name, server, tls, ca_pem=None, cert_pem=None, key_pem=None, context_name=None):
    """The kubeconfig as a dict (the shape `openstack coe cluster config` writes)."""
    if tls:
        user = CLIENT_CN
        context = context_name or 'default'
        cluster_entry = {'certificate-authority-data': b64(ca_pem), 'server': server}
        user_entry = {'client-certificate-data': b64(cert_pem), 'client-key-data': b64(key_pem)}
    else:
        user = cluster_name
        context = context_name or cluster_name
        cluster_entry = {'server': server}
        user_entry = {}
    config = {
        'apiVersion': 'v1',
        'clusters': [{'cluster': cluster_entry, 'name': cluster_name}],
        'contexts': [{'context': {'cluster': cluster_name, 'user': user}, 'name': context}],
        'current-context': context,
        'kind': 'Config',
        'preferences': {},
        'users': [{'name': user, 'user': user_entry}],
    }
    return config


def existing_credentials(config, cluster_name):
    """(ca, cert, key) PEMs found in a parsed kubeconfig for this cluster, None where absent."""
    ca = cert = key = None
    if not isinstance(config, dict):
        return ca, cert, key
    user_name = None
    for ctx in config.get('contexts') or []:
        c = (ctx or {}).get('context') or {}
        if c.get('cluster') == cluster_name:
            user_name = c.get('user')
            break
    for entry in config.get('clusters') or []:
        if (entry or {}).get('name') == cluster_name:
            data = ((entry or {}).get('cluster') or {}).get('certificate-authority-data')
            ca = unb64(data) if data else None
    for entry in config.get('users') or []:
        if (entry or {}).get('name') == user_name:
            u = (entry or {}).get('user') or {}
            cert = unb64(u['client-certificate-data']) if u.get('client-certificate-data') else None
            key = unb64(u['client-key-data']) if u.get('client-key-data') else None
    return ca, cert, key
