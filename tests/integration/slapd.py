"""A real, throw-away OpenLDAP server (Debian's slapd) for the LDAP sign-in tests.

The directory is built offline with ``slapadd`` from an LDIF (mdb backend, one base DN),
then slapd listens on a free localhost port in the foreground until ``stop()``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conftest import free_port, port_open, stop, wait_for

SLAPD_CANDIDATES = ("/usr/sbin/slapd", "/usr/local/sbin/slapd", "/usr/local/libexec/slapd")
SCHEMA_DIRS = ("/etc/ldap/schema", "/etc/openldap/schema", "/usr/local/etc/openldap/schema")
MODULE_DIRS = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap")


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in SLAPD_CANDIDATES:
        path = Path(candidate).with_name(name)
        if path.exists():
            return str(path)
    return None


def ssha(password: str) -> str:
    """An RFC 2307 {SSHA} hash, as slappasswd makes."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - LDAP's format
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


@dataclass
class LdapUser:
    uid: str
    mail: str
    password: str
    cn: str


@dataclass
class Slapd:
    root: Path
    base_dn: str = "dc=example,dc=org"
    admin_password: str = "admin-secret"
    users: list[LdapUser] = field(default_factory=list)
    port: int = 0
    process: subprocess.Popen[Any] | None = None

    @property
    def uri(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def admin_dn(self) -> str:
        return f"cn=admin,{self.base_dn}"

    @property
    def people_dn(self) -> str:
        return f"ou=people,{self.base_dn}"

    def _config(self) -> str:
        schema = next((d for d in SCHEMA_DIRS if Path(d, "core.schema").exists()), SCHEMA_DIRS[0])
        modules = next((d for d in MODULE_DIRS if Path(d).is_dir()), None)
        lines = [f"include {schema}/{name}.schema" for name in ("core", "cosine", "inetorgperson")]
        if modules and any(Path(modules).glob("back_mdb*")):
            lines += [f"modulepath {modules}", "moduleload back_mdb"]
        lines += [
            f"pidfile {self.root}/slapd.pid",
            f"argsfile {self.root}/slapd.args",
            "database mdb",
            f'suffix "{self.base_dn}"',
            f'rootdn "{self.admin_dn}"',
            f"rootpw {ssha(self.admin_password)}",
            f"directory {self.root}/data",
            "maxsize 10485760",
            "access to attrs=userPassword by anonymous auth by self write by * none",
            "access to * by * read",
        ]
        return "\n".join(lines) + "\n"

    def _ldif(self) -> str:
        dc = self.base_dn.split(",")[0].split("=")[1]
        entries = [
            f"dn: {self.base_dn}\nobjectClass: dcObject\nobjectClass: organization\n"
            f"dc: {dc}\no: {dc}\n",
            f"dn: {self.people_dn}\nobjectClass: organizationalUnit\nou: people\n",
        ]
        for user in self.users:
            entries.append(
                f"dn: uid={user.uid},{self.people_dn}\nobjectClass: inetOrgPerson\n"
                f"uid: {user.uid}\ncn: {user.cn}\nsn: {user.cn.split()[-1]}\n"
                f"mail: {user.mail}\nuserPassword: {ssha(user.password)}\n"
            )
        return "\n".join(entries)

    def start(self) -> Slapd:
        slapd, slapadd = find_binary("slapd"), find_binary("slapadd")
        if slapd is None or slapadd is None:
            raise FileNotFoundError("slapd")
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        conf = self.root / "slapd.conf"
        conf.write_text(self._config())
        ldif = self.root / "data.ldif"
        ldif.write_text(self._ldif())
        done = subprocess.run(
            [slapadd, "-f", str(conf), "-l", str(ldif)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"slapadd failed: {done.stderr[-2000:]}")
        self.port = free_port()
        log = (self.root / "slapd.log").open("wb")
        # -d 0: stay in the foreground (so the test owns the process) without debug output
        self.process = subprocess.Popen(
            [slapd, "-f", str(conf), "-h", f"{self.uri}/", "-d", "0"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: self._ready(), 20, "slapd to listen")
        except AssertionError:
            self.stop()
            raise AssertionError(
                "slapd did not start: " + (self.root / "slapd.log").read_text()[-2000:]
            ) from None
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError("slapd exited: " + (self.root / "slapd.log").read_text()[-2000:])
        return port_open(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None
