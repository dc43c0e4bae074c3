"""Git storage over ssh: a real OpenSSH server on 127.0.0.1, with a ``git`` account whose shell is git-shell.

The client side is configured the way users do it: an ssh config file (``GIT_SSH_COMMAND="ssh -F
..."``, the same as ``~/.ssh/config``) with the host alias, port, key and known host. Nothing
in headwater knows about the test's key: git and ssh find it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from github_helpers import Repo, git
from headwater.plugins import from_dict, load_flows_from_file
from headwater.testing import free_port, wait_for
from headwater_github import Git
from headwater_github.errors import RepoAuthError, RepoNotFoundError

SSHD = Path("/usr/sbin/sshd")

FLOW = '''
from headwater import Flow, task
from helpers.text import decorate


@task
def message():
    with open("message.txt") as f:
        return decorate(f.read().strip())


with Flow("sshflow") as flow:
    message()
'''

FILES = {
    "pipelines/sshflow.py": FLOW,
    "pipelines/message.txt": "over ssh\n",
    "pipelines/helpers/__init__.py": "",
    "pipelines/helpers/text.py": "def decorate(text):\n    return f'<{text}>'\n",
}


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


class SSHServer:
    """``sshd -D`` on 127.0.0.1 (own host key, config and authorized keys) and a client config for it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.log = root / "sshd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SSHServer:
        root = self.root
        host_public = _keygen(root / "host_key")
        client_public = _keygen(root / "client_key")
        _keygen(root / "stranger_key")
        (root / "authorized_keys").write_text(client_public + "\n")
        (root / "authorized_keys").chmod(0o644)
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\nPidFile {root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAllowUsers git root\n"
            "PrintMotd no\nLogLevel VERBOSE\n"
        )
        (root / "known_hosts").write_text(f"gitbox {host_public}\n")
        for name, key in (("ssh_config", "client_key"), ("stranger_config", "stranger_key")):
            (root / name).write_text(
                f"Host gitbox\n  HostName 127.0.0.1\n  Port {self.port}\n  HostKeyAlias gitbox\n"
                f"  IdentityFile {root / key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {root / 'known_hosts'}\n"
                "  StrictHostKeyChecking yes\n  BatchMode yes\n"
            )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(root / "sshd_config")],
                                            stdout=out, stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(listening, 30, 0.05, "sshd to listen")
        return self

    def ssh_command(self, config: str = "ssh_config") -> str:
        return f"ssh -F {self.root / config}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def ssh_root() -> Iterator[Path]:
    """A directory the ``git`` account can read (pytest's temporary directories are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="headwater-ssh-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd(ssh_root: Path) -> Iterator[SSHServer]:
    assert SSHD.exists(), "OpenSSH's server is missing: run scripts/system-deps.d/github.sh (apt-get install openssh-server)"
    server = SSHServer(ssh_root).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def git_account() -> pwd.struct_passwd:
    try:
        account = pwd.getpwnam("git")
    except KeyError:
        pytest.fail("There is no 'git' account: run scripts/system-deps.d/github.sh as root (it adds one with git-shell).")
    assert account.pw_shell.endswith("git-shell"), account
    return account


@pytest.fixture
def ssh_env(sshd: SSHServer, monkeypatch: pytest.MonkeyPatch) -> SSHServer:
    monkeypatch.setenv("GIT_SSH_COMMAND", sshd.ssh_command())
    monkeypatch.setenv("HEADWATER__GITHUB__BACKOFF", "0.01")
    monkeypatch.setenv("HEADWATER__GITHUB__RETRIES", "1")
    return sshd


def _repo(root: Path, name: str) -> tuple[Repo, str]:
    repo = Repo(root, name)
    sha = repo.commit(FILES, "flows over ssh")
    return repo, sha


def _register(store: Git, checkout: Path) -> str:
    os.chdir(checkout)
    location = store.add_flow(load_flows_from_file(checkout / "pipelines/sshflow.py")["sshflow"])
    store.build()
    return location


def _run(store: Git, location: str) -> tuple[object, dict[str, str]]:
    agent = from_dict(store.serialize(), "storage")  # what the agent's run process rebuilds
    state = agent.get_flow(location).run(run_on_schedule=False)
    assert state.is_successful(), state
    return next(iter(state.result.values())).result, agent.run_details()


def test_an_ssh_url_with_the_users_ssh_config(ssh_env: SSHServer, ssh_root: Path, tmp_path: Path) -> None:
    repo, sha = _repo(ssh_root / "root-repos", "etl")
    store = Git(repo=f"ssh://root@gitbox{repo.origin}", flow_path="pipelines/sshflow.py", branch_name="main")
    checkout = repo.clone(tmp_path / "checkout")
    location = _register(store, checkout)
    value, details = _run(store, location)
    assert value == "<over ssh>"  # the helper module and the data file came along
    assert sha in details.values(), details
    assert "Accepted publickey for root" in ssh_env.log.read_text()  # it really went through sshd


def test_use_ssh_builds_git_at_host_and_works_through_git_shell(
    ssh_env: SSHServer, ssh_root: Path, tmp_path: Path, git_account: pwd.struct_passwd
) -> None:
    base = ssh_root / "git-repos"
    repo, sha = _repo(base, "warehouse")
    shutil.chown(base, git_account.pw_uid, git_account.pw_gid)
    for path in [repo.origin, *repo.origin.rglob("*")]:  # the git account owns what it serves (no dubious ownership)
        os.chown(path, git_account.pw_uid, git_account.pw_gid)
    store = Git(repo=str(base / "warehouse"), repo_host="gitbox", use_ssh=True, flow_path="pipelines/sshflow.py",
                tag=None, branch_name="main")
    assert store.url() == f"git@gitbox:{base / 'warehouse'}.git"  # Prefect 1's use_ssh form
    checkout = tmp_path / "checkout"
    git("clone", "-q", str(repo.work), str(checkout))
    location = _register(store, checkout)
    value, details = _run(store, location)
    assert value == "<over ssh>" and sha in details.values(), details
    assert "Accepted publickey for git" in ssh_env.log.read_text()


def test_a_key_the_server_does_not_know_is_an_auth_error(
    ssh_env: SSHServer, ssh_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _ = _repo(ssh_root / "root-repos-2", "denied")
    monkeypatch.setenv("GIT_SSH_COMMAND", ssh_env.ssh_command("stranger_config"))
    store = Git(repo=f"ssh://root@gitbox{repo.origin}", flow_path="pipelines/sshflow.py", branch_name="main")
    with pytest.raises(RepoAuthError, match="(?s)Permission denied.*ssh key with access"):
        _register(store, repo.clone(tmp_path / "checkout"))


def test_a_missing_repository_over_ssh_names_it(ssh_env: SSHServer, ssh_root: Path, tmp_path: Path) -> None:
    repo, _ = _repo(ssh_root / "root-repos-3", "present")
    store = Git(repo=f"ssh://root@gitbox{ssh_root}/nowhere.git", flow_path="pipelines/sshflow.py", branch_name="main")
    with pytest.raises(RepoNotFoundError, match="nowhere.git"):
        _register(store, repo.clone(tmp_path / "checkout"))
