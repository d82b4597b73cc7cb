"""Per-cluster certificate authorities for Magnum's certificates API.

``cryptography`` is imported on first use: most test runs never ask for a CA,
and start-up time matters for large scenarios.
"""

import datetime
import ipaddress

TERM_OF_VALIDITY_DAYS = 365 * 5


def _bytes(pem):
    return pem.encode() if isinstance(pem, str) else pem


class CertificateAuthority:
    """A CA of its own (`common_name`), or an existing one (`cert_pem` and `key_pem`)."""

    def __init__(self, common_name=None, cert_pem=None, key_pem=None):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self._x509 = x509
        self._hashes = hashes
        self._serialization = serialization
        if cert_pem and key_pem:
            self.cert = x509.load_pem_x509_certificate(_bytes(cert_pem))
            self.key = serialization.load_pem_private_key(_bytes(key_pem), password=None)
            return
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=TERM_OF_VALIDITY_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @classmethod
    def from_files(cls, cert_file, key_file):
        with open(cert_file, encoding="utf-8") as cert, open(key_file, encoding="utf-8") as key:
            return cls(cert_pem=cert.read(), key_pem=key.read())

    @property
    def pem(self):
        return self.cert.public_bytes(self._serialization.Encoding.PEM).decode()

    @property
    def key_pem(self):
        s = self._serialization
        return self.key.private_bytes(s.Encoding.PEM, s.PrivateFormat.TraditionalOpenSSL, s.NoEncryption()).decode()

    def issue(self, common_name, organizations=(), hosts=()):
        """A new key and a certificate for it: (cert PEM, key PEM). With `hosts` (names and IP
        addresses) a serving certificate for them, else a client certificate (CN user, O groups)."""
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        x509 = self._x509
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations] +
                            [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        s = self._serialization
        return (self._sign(subject, key.public_key(), hosts),
                key.private_bytes(s.Encoding.PEM, s.PrivateFormat.TraditionalOpenSSL, s.NoEncryption()).decode())

    def sign_csr(self, csr_pem):
        """Issue a client certificate for a PEM CSR; ValueError when it is not one."""
        data = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
        csr = self._x509.load_pem_x509_csr(data)
        if not csr.is_signature_valid:
            raise ValueError("CSR signature is invalid")
        return self._sign(csr.subject, csr.public_key())

    def _sign(self, subject, public_key, hosts=()):
        """A certificate (PEM) for `public_key`: serving `hosts` (names, IP addresses), or a client's."""
        x509 = self._x509
        usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if hosts else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=TERM_OF_VALIDITY_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if hosts:
            names = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, self._hashes.SHA256()).public_bytes(self._serialization.Encoding.PEM).decode()
