# -*- coding: utf-8 -*-
"""Run an OpenStack entry point with every sqlite transaction opened as BEGIN IMMEDIATE.

    python sqlite_immediate.py PROG MODULE:FUNCTION [ARGS...]

oslo.db opens sqlite transactions with a plain (deferred) BEGIN. heat-engine runs many
threads on one database file; when two deferred transactions that have both read try to
write, sqlite refuses one at once with "database is locked" (waiting could not help), and
the stack fails. Taking the write lock at BEGIN makes such transactions queue instead
(each waits up to the connection's timeout). Production Heat uses MySQL, where this does
not arise.

Run by path with the services virtualenv's interpreter; standard library only. Imported as
a module (uWSGI's ``--import sqlite_immediate`` with this directory on its Python path), it
patches the process it is imported into.
"""

import importlib
import sqlite3
import sqlite3.dbapi2
import sys


class _Cursor(sqlite3.Cursor):
    def execute(self, sql, *args):  # pylint: disable=arguments-differ
        if isinstance(sql, str) and sql.strip().upper() == 'BEGIN':
            sql = 'BEGIN IMMEDIATE'
        return super().execute(sql, *args)


class _Connection(sqlite3.Connection):
    def cursor(self, factory=_Cursor):  # pylint: disable=arguments-differ
        return super().cursor(factory)

    def execute(self, sql, *args):  # pylint: disable=arguments-differ
        return self.cursor().execute(sql, *args)


_connect = sqlite3.connect


def _immediate_connect(*args, **kwargs):
    kwargs.setdefault('factory', _Connection)
    return _connect(*args, **kwargs)


def install():
    sqlite3.connect = sqlite3.dbapi2.connect = _immediate_connect


def main():
    if len(sys.argv) < 3 or ':' not in sys.argv[2]:
        sys.exit('usage: sqlite_immediate.py PROG MODULE:FUNCTION [ARGS...]')
    prog, target = sys.argv[1], sys.argv[2]
    # Run by path, this directory heads sys.path: keep its modules out of the service's way.
    if sys.path and sys.path[0] == __file__.rsplit('/', 1)[0]:
        del sys.path[0]
    install()
    module, function = target.split(':', 1)
    sys.argv = [prog] + sys.argv[3:]
    return getattr(importlib.import_module(module), function)()


if __name__ == '__main__':
    sys.exit(main())
else:
    install()
