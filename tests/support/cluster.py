"""A cluster on one machine: what the cluster tests run on, and where the README's "Scaling out"
commands can be tried by hand.

    python -m tests.support.cluster DIR [--ray] [--slurm]

starts PostgreSQL, an MLflow tracking server on it with proxied artifacts, and with --ray a Ray
cluster of two nodes (each with an IMDB_EXP_HOME of its own, as two machines have two disks), with
--slurm a one-host SLURM cluster with accounting (munge, MariaDB, slurmdbd, slurmctld, slurmd);
prints the settings to use, and stops everything on Ctrl-C.

Needs Debian's postgresql (and slurm-wlm, slurmdbd, munge, mariadb-server for SLURM; .ci/run
installs them). Every service is a real process in a process group of its own, started here and
stopped here by that group, never by name; folders the service users must own are made under /tmp.
PostgreSQL refuses to run as root and munge runs as its own user: as root, they run as the users
Debian's packages created; SLURM's daemons run as root, which slurmd needs to start jobs.
"""

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path

# Debian's PostgreSQL server binaries, of its newest installed version (15 on Debian 12, 16 on Ubuntu 24.04).
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda b: int(b.parent.name), default=Path("/nonexistent"))
DB_USER = "imdbexp"
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LocalCluster(ExitStack):
    """The services started so far; leaving the ``with`` block (a failed test too) stops them all,
    the last started first."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.password = secrets.token_hex(8)
        self.pg_port: int | None = None

    def __enter__(self) -> "LocalCluster":
        super().__enter__()
        # SIGTERM (a CI time limit, a `kill`) unwinds the block like an error, so that the services stop too.
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
            self.callback(signal.signal, signal.SIGTERM, previous)
        return self

    # -- processes ---------------------------------------------------------------------------------

    def start(
        self, name: str, command: list[str], env: dict | None = None, user: str | None = None, stop_with=signal.SIGTERM
    ):
        """``command`` in a new process group, its output in DIR/NAME.log; stopped with the cluster by
        ``stop_with`` to its group."""
        log = (self.folder / f"{name}.log").open("ab")
        as_user = {"user": user, "group": user} if user and os.geteuid() == 0 else {}
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ | (env or {}),
            start_new_session=True,
            **as_user,
        )
        log.close()
        self.callback(self.stop, process, signum=stop_with)
        return process

    @staticmethod
    def stop(process: subprocess.Popen, timeout: float = 30, signum: int = signal.SIGTERM) -> None:
        """``signum`` to the process's group, SIGKILL to what is left after ``timeout`` seconds."""
        try:
            os.killpg(process.pid, signum)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # children that outlived their leader too
        process.wait()

    def wait_until(self, ready: Callable[[], bool], name: str, process, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]
                state = f"exited with {process.returncode}" if process.poll() is not None else "did not answer"
                raise RuntimeError(f"{name} {state}; its log ends:\n{log}")
            time.sleep(0.3)

    def owned_folder(self, name: str, user: str | None = None) -> Path:
        """A folder under /tmp (a test's tmp_path is root's alone, and too long a path for Ray's sockets),
        owned by ``user`` when given, removed with the cluster."""
        folder = Path(tempfile.mkdtemp(prefix=f"imdb-exp-{name}-"))
        if user and os.geteuid() == 0:
            shutil.chown(folder, user, user)
        self.callback(shutil.rmtree, folder, ignore_errors=True)
        return folder

    # -- PostgreSQL, and an MLflow server on it ------------------------------------------------------

    def postgres(self) -> str:
        """PostgreSQL on a free loopback port with a password-protected user; its URL without a database."""
        data = self.owned_folder("postgres", "postgres")
        password_file = data / "password"
        password_file.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(password_file, "postgres", "postgres")
        initdb = [str(PG_BIN / "initdb"), "-D", str(data / "db"), "-U", DB_USER, f"--pwfile={password_file}"]
        as_user = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
        subprocess.run(initdb + ["--auth=scram-sha-256"], check=True, capture_output=True, **as_user)
        self.pg_port = free_port()
        server = [str(PG_BIN / "postgres"), "-D", str(data / "db"), "-p", str(self.pg_port), "-k", str(data)]
        self.pg_command = server + ["-c", "listen_addresses=127.0.0.1"]
        self._start_postgres()
        return f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.pg_port}"

    def _start_postgres(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: it cuts its clients' connections rather than waiting
        # for them to close (an MLflow server never closes its pooled ones).
        self.pg_process = self.start("postgres", self.pg_command, user="postgres", stop_with=signal.SIGINT)
        self.wait_until(self._pg_ready, "postgres", self.pg_process)

    def restart_postgres(self, downtime: float) -> None:
        """PostgreSQL stopped (every connection cut), down for ``downtime`` seconds, then back on the same
        port with the same data: what a database restart looks like to its clients."""
        self.stop(self.pg_process, signum=signal.SIGINT)
        time.sleep(downtime)
        self._start_postgres()

    def _pg_ready(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.database_url("postgres"), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def database_url(self, name: str) -> str:
        return f"postgresql://{DB_USER}:{self.password}@127.0.0.1:{self.pg_port}/{name}"

    def database(self, name: str) -> str:
        """A new, empty database; its URL."""
        import psycopg

        with psycopg.connect(self.database_url("postgres"), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def mlflow_server(self, backend_uri: str | None = None) -> str:
        """``mlflow server`` over ``backend_uri`` (default: a new PostgreSQL database), artifacts proxied
        into DIR/artifacts; its URL."""
        port = free_port()
        command = [str(Path(sys.executable).with_name("mlflow")), "server"]
        command += ["--backend-store-uri", backend_uri or self.database("mlflow")]
        command += ["--artifacts-destination", str(self.folder / "artifacts")]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        self.mlflow_process = process = self.start("mlflow-server", command)
        url = f"http://127.0.0.1:{port}"
        self.wait_until(lambda: _health(url), "mlflow-server", process, timeout=180)
        return url

    # -- Ray -----------------------------------------------------------------------------------------

    def ray(self, homes: list[Path], cpus_per_node: int = 1) -> dict[str, str]:
        """A Ray cluster of one node per IMDB_EXP_HOME in ``homes`` (the first the head); the environment
        a driver needs to join it (RAY_ADDRESS, and its authentication token).

        Each node's `ray start --block` leads a process group holding its raylet and workers, so
        stopping a group loses that node and nothing else, as a machine going down would."""
        self.ray_nodes = []
        port = free_port()
        token = self.folder / "ray-auth-token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        # Token authentication on, with a token of this cluster's: Ray otherwise takes ~/.ray/auth_token
        # when one exists, and a client without RAY_AUTH_MODE=token is refused.
        env = {"RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        ray = str(Path(sys.executable).with_name("ray"))
        for i, home in enumerate(homes):
            # A folder of the node's own (short: Ray's socket paths must fit 107 bytes) rather than /tmp/ray,
            # whose ray_current_cluster file would make every ray.init() on this machine join this cluster,
            # and, once it is stopped, fail to.
            node = [ray, "start", "--block", f"--num-cpus={cpus_per_node}", "--disable-usage-stats"]
            node += [f"--temp-dir={self.owned_folder(f'ray{i}')}", "--node-ip-address=127.0.0.1"]
            if i == 0:
                node += ["--head", f"--port={port}", "--include-dashboard=false"]
            else:
                node += [f"--address={env['RAY_ADDRESS']}"]
            node_env = env | {"IMDB_EXP_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0"}
            process = self.start(f"ray-node-{i}", node, env=node_env)
            self.ray_nodes.append(process)
            self.wait_until(lambda i=i: self._ray_nodes_alive(env) > i, f"ray-node-{i}", process)
        return env

    def _ray_nodes_alive(self, env: dict[str, str]) -> int:
        ray = str(Path(sys.executable).with_name("ray"))
        status = subprocess.run([ray, "status"], capture_output=True, text=True, env=os.environ | env)
        if status.returncode != 0:
            return 0
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return active.count("node_")

    # -- SLURM ---------------------------------------------------------------------------------------

    def slurm(self) -> dict[str, str]:
        """A one-host SLURM cluster with accounting, so that sacct (which submitit asks) knows how each
        job ended; the environment its commands need (SLURM_CONF)."""
        munge_socket = self._munge()
        db_port = self._mariadb()
        folder = self.folder / "slurm"
        for sub in ("state", "spool"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        host = socket.gethostname()
        dbd_port, ctld_port, slurmd_port = free_port(), free_port(), free_port()
        # A requeued job waits out its last credential's lifetime (cred_expire, 120 s by default) before it
        # may start again: 10 s here, so that a preempted job comes back within the tests' time.
        auth = f"AuthType=auth/munge\nAuthInfo=socket={munge_socket}"
        dbd_conf = folder / "slurmdbd.conf"
        dbd_conf.write_text(
            auth + f"\nDbdHost={host}\nDbdAddr=127.0.0.1\nDbdPort={dbd_port}\nSlurmUser=root\n"
            f"PidFile={folder}/slurmdbd.pid\nLogFile={folder}/slurmdbd.log\n"
            f"StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\nStoragePort={db_port}\n"
            f"StorageUser=slurm\nStoragePass={self.password}\nStorageLoc=slurm_acct_db\n"
        )
        dbd_conf.chmod(0o600)
        conf = folder / "slurm.conf"
        cpus = os.cpu_count() or 2
        conf.write_text(
            auth + f",cred_expire=10\nClusterName=imdbexp\nSlurmctldHost={host}(127.0.0.1)\nSlurmUser=root\n"
            f"SlurmctldPort={ctld_port}\nSlurmdPort={slurmd_port}\n"
            f"StateSaveLocation={folder}/state\nSlurmdSpoolDir={folder}/spool\n"
            f"SlurmctldPidFile={folder}/slurmctld.pid\nSlurmdPidFile={folder}/slurmd.pid\n"
            f"SlurmctldLogFile={folder}/slurmctld.log\nSlurmdLogFile={folder}/slurmd.log\n"
            # No systemd and no cgroups here: processes tracked by their parents, tasks not confined.
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
            f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost={host}\n"
            f"AccountingStoragePort={dbd_port}\nJobCompType=jobcomp/none\n"
            "MpiDefault=none\nMailProg=/bin/true\nSelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\nReturnToService=2\n"
            # A requeued job may start again at once (the default holds it back 60 s).
            "MinJobAge=300\nKillWait=10\n"
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n"
            "PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        )
        env = {"SLURM_CONF": str(conf)}
        # slurmdbd reads the slurmdbd.conf beside SLURM_CONF's file.
        dbd = self.start("slurmdbd", ["/usr/sbin/slurmdbd", "-D"], env=env)
        self.wait_until(lambda: answers(dbd_port), "slurmdbd", dbd)
        ctld = self.start("slurmctld", ["/usr/sbin/slurmctld", "-D", "-i", "-f", str(conf)], env=env)
        self.wait_until(lambda: answers(ctld_port), "slurmctld", ctld)
        slurmd = self.start("slurmd", ["/usr/sbin/slurmd", "-D", "-f", str(conf)], env=env)
        self.wait_until(lambda: _node_idle(env), "slurmd", slurmd)
        # Jobs run under slurmstepd, which outlives slurmd: they are cancelled before the daemons stop.
        self.callback(_cancel_every_job, env)
        return env

    def _munge(self) -> Path:
        """munged on its default socket: slurmctld's connection to slurmdbd looks only there (AuthInfo's
        socket is not used for it in SLURM 22.05). A munged already answering there is used as it is."""
        folder = self.owned_folder("munge", "munge")
        socket_path = MUNGE_SOCKET
        if socket_path.exists() and subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
            return socket_path
        socket_path.parent.mkdir(mode=0o755, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(socket_path.parent, "munge", "munge")
        command = ["/usr/sbin/munged", "-F", f"--socket={socket_path}", f"--key-file={MUNGE_KEY}"]
        command += [f"--pid-file={folder}/munged.pid", f"--log-file={folder}/munged.log", f"--seed-file={folder}/seed"]
        process = self.start("munged", command, user="munge")
        self.wait_until(socket_path.exists, "munged", process)
        return socket_path

    def _mariadb(self) -> int:
        folder = self.owned_folder("mariadb", "mysql")
        port = free_port()
        subprocess.run(
            [
                "mariadb-install-db",
                f"--datadir={folder}/data",
                "--user=mysql",
                "--auth-root-authentication-method=normal",
            ],
            check=True,
            capture_output=True,
        )
        command = ["/usr/sbin/mariadbd", "--no-defaults", f"--datadir={folder}/data", f"--socket={folder}/socket"]
        command += [f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={folder}/pid", "--skip-log-error"]
        process = self.start("mariadb", command, user="mysql")
        self.wait_until(lambda: answers(port), "mariadb", process)
        sql = (
            f"CREATE USER 'slurm'@'localhost' IDENTIFIED BY '{self.password}';"
            f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{self.password}';"
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
        )
        subprocess.run(["mariadb", f"--socket={folder}/socket", "-uroot", "-e", sql], check=True, capture_output=True)
        return port


def _exit_on_sigterm(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def _health(url: str) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(f"{url}/health", timeout=2)
        return True
    except OSError:
        return False


def _cancel_every_job(env: dict[str, str], timeout: float = 60) -> None:
    """Cancels the jobs of this cluster (SLURM_CONF names it) and waits until none is left."""
    env = os.environ | env
    deadline = time.monotonic() + timeout
    while jobs := subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env).stdout.split():
        if time.monotonic() > deadline:
            break
        subprocess.run(["scancel", *jobs], capture_output=True, env=env)
        time.sleep(1)


def _node_idle(env: dict[str, str]) -> bool:
    info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=os.environ | env)
    return info.returncode == 0 and "idle" in info.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where the services keep their files and logs")
    parser.add_argument("--ray", action="store_true", help="also a Ray cluster of two nodes")
    parser.add_argument("--slurm", action="store_true", help="also a one-host SLURM cluster")
    args = parser.parse_args()
    with LocalCluster(args.folder) as cluster:
        server = cluster.postgres()
        settings = {"tracking.uri": cluster.mlflow_server(), "PostgreSQL": server + "/DATABASE"}
        settings["hydra.sweeper.storage"] = cluster.database("optuna")
        if args.ray:
            settings |= cluster.ray([args.folder / "node-0-home", args.folder / "node-1-home"])
        if args.slurm:
            settings |= cluster.slurm()
        for key, value in settings.items():
            print(f"{key}: {value}")
        print("Ctrl-C (or SIGTERM) stops them all.", flush=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
        with suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
