"""A real Neo4j 5 Community server for development and tests, started without Docker.

`neo4j-launcher/` is a small Maven project whose main class runs Neo4j in-process with Bolt
on 127.0.0.1. `Neo4jDevServer` builds it when needed (offline first, then from Maven Central),
starts it in a temporary data directory on a free port, waits until the driver can connect,
and stops it again. `python -m kg.neo4j_server` runs one until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

LAUNCHER_DIR = Path(__file__).resolve().parent.parent / "neo4j-launcher"
MAIN_CLASS = "riskgraph.neo4j.Launcher"
# Read by the launcher: when set, auth is on and user `neo4j` gets this password.
PASSWORD_ENV = "NEO4J_LAUNCHER_PASSWORD"
USER = "neo4j"
REQUIRED_TOOLS = ("java", "mvn")

_READY_PREFIX = "READY "
_BUILD_TIMEOUT_S = 900.0
_STOP_TIMEOUT_S = 60.0


class Neo4jServerError(RuntimeError):
    """The launcher could not be built or the server did not start or stop."""


def missing_tools() -> list[str]:
    """The command-line tools the launcher needs that are not on PATH."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


def _launcher_jar(launcher_dir: Path) -> Path | None:
    jars = sorted((launcher_dir / "target").glob("neo4j-launcher-*.jar"))
    return jars[-1] if jars else None


def _is_built(launcher_dir: Path) -> bool:
    jar = _launcher_jar(launcher_dir)
    lib = launcher_dir / "lib"
    if jar is None or not lib.is_dir() or not any(lib.glob("neo4j-*.jar")):
        return False
    inputs = [launcher_dir / "pom.xml", *(launcher_dir / "src").rglob("*.java")]
    return jar.stat().st_mtime >= max(path.stat().st_mtime for path in inputs)


def build_launcher(launcher_dir: Path = LAUNCHER_DIR) -> Path:
    """Compile the launcher and copy its dependencies to `lib/` unless that is up to date.

    Tries Maven offline first (fast when the artefacts are in the local repository), then
    online. Returns the launcher jar.

    Raises:
        Neo4jServerError: a tool is missing or both Maven runs failed.
    """
    if not (launcher_dir / "pom.xml").is_file():
        raise Neo4jServerError(f"no Neo4j launcher project at {launcher_dir}")
    if not _is_built(launcher_dir):
        missing = missing_tools()
        if missing:
            raise Neo4jServerError(f"building the Neo4j launcher needs {', '.join(missing)}")
        outputs: list[str] = []
        for offline in (True, False):
            command = ["mvn", "-q", "-B", *(["-o"] if offline else []), "package"]
            done = subprocess.run(
                command,
                cwd=launcher_dir,
                capture_output=True,
                text=True,
                timeout=_BUILD_TIMEOUT_S,
                check=False,
            )
            if done.returncode == 0:
                break
            outputs.append(f"$ {' '.join(command)}\n{_tail(done.stdout + done.stderr)}")
        else:
            raise Neo4jServerError("building the Neo4j launcher failed:\n" + "\n".join(outputs))
    jar = _launcher_jar(launcher_dir)
    if jar is None:
        raise Neo4jServerError(f"Maven built no launcher jar in {launcher_dir / 'target'}")
    return jar


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Neo4jDevServer:
    """A throw-away Neo4j server on 127.0.0.1, as a context manager.

    Example:
        >>> with Neo4jDevServer() as server:  # doctest: +SKIP
        ...     store = Neo4jStore(server.uri, *server.auth)
    """

    def __init__(
        self,
        *,
        port: int = 0,
        password: str | None = None,
        data_dir: Path | None = None,
        launcher_dir: Path = LAUNCHER_DIR,
        heap: str = "1g",
        page_cache: str = "256m",
        jvm_options: Sequence[str] = ("-XX:TieredStopAtLevel=1",),
        start_timeout: float = 240.0,
    ) -> None:
        """Describe a server; nothing starts before `start()` or `with`.

        Args:
            port: Bolt port; 0 lets the server pick a free one.
            password: password of user `neo4j`; None runs the server without auth.
            data_dir: where the database lives; None means a temporary directory that is
                removed on stop.
            launcher_dir: the Maven project of the launcher.
            heap: the JVM's maximum heap (`-Xmx`): query memory and transaction state.
            page_cache: Neo4j's page cache (off-heap, on top of the heap), which keeps the
                store files in memory; the default suits tests, a bulk load of millions of
                rows wants the size of the store (see `bench/bench_neo4j.py`).
            jvm_options: more JVM options; the default trades peak query speed for a
                start-up about a third faster (quick compiler only).
            start_timeout: seconds to wait for the server to accept Bolt connections.
        """
        self.port = port
        self.password = password
        self.launcher_dir = launcher_dir
        self.heap = heap
        self.page_cache = page_cache
        self.jvm_options = list(jvm_options)
        self.start_timeout = start_timeout
        self._data_dir = data_dir
        self._temp_dir: Path | None = None
        self._process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        # (temporary file the JVM writes the class archive to, where it goes when complete)
        self._archive_dump: tuple[Path, Path] | None = None
        self._uri: str | None = None

    @property
    def uri(self) -> str:
        """The Bolt URI, e.g. `bolt://127.0.0.1:7687`; only while the server runs."""
        if self._uri is None:
            raise Neo4jServerError("the Neo4j server is not running")
        return self._uri

    @property
    def auth(self) -> tuple[str, str | None]:
        """(user, password) for the driver; the password is None when auth is off."""
        return USER, self.password

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def data_dir(self) -> Path:
        if self._data_dir is not None:
            return self._data_dir
        if self._temp_dir is None:
            raise Neo4jServerError("the Neo4j server is not running")
        return self._temp_dir / "neo4j"

    def start(self) -> str:
        """Build the launcher if needed, start the server and wait until it answers.

        Returns:
            The Bolt URI.

        Raises:
            Neo4jServerError: the build failed, or the server exited or did not answer in
                time (the message carries the end of its log).
        """
        if self._process is not None:
            return self.uri
        jar = build_launcher(self.launcher_dir)
        self._temp_dir = Path(tempfile.mkdtemp(prefix="riskgraph-neo4j-"))
        self._stderr = (self._temp_dir / "launcher.stderr").open("w+", encoding="utf-8")
        env = {key: value for key, value in os.environ.items() if key != PASSWORD_ENV}
        if self.password:
            env[PASSWORD_ENV] = self.password
        command = [
            "java",
            f"-Xmx{self.heap}",
            f"-Driskgraph.pagecache={self.page_cache}",
            *self.jvm_options,
            *self._class_archive_options(jar),
            # JVM warnings would otherwise go to stdout, where the READY line is read.
            "-Xlog:disable",
            "-Xlog:all=warning:stderr",
            "-cp",
            os.pathsep.join([str(jar), str(self.launcher_dir / "lib" / "*")]),
            MAIN_CLASS,
            str(self.port),
            str(self.data_dir),
        ]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            # Its own session: Ctrl-C reaches only this process, which then stops the server.
            start_new_session=True,
        )
        try:
            self._uri = self._await_ready()
            self._await_connectivity()
        except BaseException:
            self.stop()
            raise
        return self._uri

    def _class_archive_options(self, jar: Path) -> list[str]:
        # Neo4j loads ~20k classes at start; a dynamic class-data-sharing archive written by
        # the first run makes later starts about three times faster.
        archive = jar.with_suffix(".jsa")
        if archive.is_file() and archive.stat().st_mtime >= jar.stat().st_mtime:
            return [f"-XX:SharedArchiveFile={archive}"]
        dump = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
        self._archive_dump = (dump, archive)
        return [f"-XX:ArchiveClassesAtExit={dump}"]

    def _await_ready(self) -> str:
        process = self._process
        assert process is not None and process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = process.stdout

        def pump() -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, name="neo4j-launcher-stdout", daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._failure(f"did not start within {self.start_timeout:.0f} s")
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                process.wait()
                raise self._failure(f"exited with status {process.returncode} before READY")
            if line.startswith(_READY_PREFIX):
                return line[len(_READY_PREFIX) :].strip()

    def _await_connectivity(self) -> None:
        try:
            import neo4j
        except ImportError as error:
            raise Neo4jServerError(
                "the Neo4j Python driver is missing: pip install 'riskgraph[neo4j]'"
            ) from error
        user, password = self.auth
        auth = (user, password) if password else None
        deadline = time.monotonic() + self.start_timeout
        with neo4j.GraphDatabase.driver(self.uri, auth=auth) as driver:
            while True:
                try:
                    driver.verify_connectivity()
                    return
                except neo4j.exceptions.ServiceUnavailable as error:
                    if time.monotonic() > deadline:
                        raise self._failure(f"does not answer on {self.uri}") from error
                    time.sleep(0.2)

    def _failure(self, what: str) -> Neo4jServerError:
        log = ""
        if self._stderr is not None:
            self._stderr.flush()
            self._stderr.seek(0)
            log += _tail(self._stderr.read())
        debug_log = self.data_dir / "logs" / "debug.log"
        if debug_log.is_file():
            log += "\n--- debug.log ---\n" + _tail(debug_log.read_text(errors="replace"))
        return Neo4jServerError(f"the Neo4j server {what}:\n{log}")

    def stop(self) -> None:
        """Shut the server down (it checkpoints and exits) and remove a temporary data dir."""
        process, self._process, self._uri = self._process, None, None
        if process is not None:
            self._shut_down(process)
            self._keep_class_archive(process.returncode == 0)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def _keep_class_archive(self, clean_exit: bool) -> None:
        if self._archive_dump is None:
            return
        dump, archive = self._archive_dump
        self._archive_dump = None
        if dump.is_file():
            if clean_exit:
                os.replace(dump, archive)
            else:
                dump.unlink()

    @staticmethod
    def _shut_down(process: subprocess.Popen[str]) -> None:
        # Closing stdin is the launcher's signal to shut down cleanly; SIGTERM, then SIGKILL,
        # only if it hangs.
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        for escalate in (None, signal.SIGTERM, signal.SIGKILL):
            if escalate is not None and process.poll() is None:
                process.send_signal(escalate)
            try:
                process.wait(timeout=_STOP_TIMEOUT_S)
                break
            except subprocess.TimeoutExpired:
                continue
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Neo4jDevServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run a development server until Ctrl-C (`python -m kg.neo4j_server`)."""
    parser = argparse.ArgumentParser(
        prog="python -m kg.neo4j_server", description="Run a local Neo4j 5 server (no Docker)."
    )
    parser.add_argument("--port", type=int, default=7687, help="Bolt port (0: any free port)")
    parser.add_argument(
        "--data", type=Path, default=None, help="keep the database here (default: temporary)"
    )
    parser.add_argument(
        "--password",
        default=os.environ.get("RISKGRAPH_NEO4J_PASSWORD") or None,
        help="password of user neo4j (default: $RISKGRAPH_NEO4J_PASSWORD; none: auth off)",
    )
    args = parser.parse_args(argv)
    server = Neo4jDevServer(port=args.port, password=args.password, data_dir=args.data)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    started = time.monotonic()
    try:
        server.start()
    except Neo4jServerError as error:
        print(error, file=sys.stderr)
        return 1
    print(server.uri, flush=True)
    print(
        f"# started in {time.monotonic() - started:.1f} s; Ctrl-C stops it. For riskgraph:\n"
        f"#   RISKGRAPH_STORE=neo4j RISKGRAPH_NEO4J_URI={server.uri} "
        f"RISKGRAPH_NEO4J_USER={USER}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop_requested.wait(1.0):
            if not server.running:
                print("the Neo4j server exited", file=sys.stderr)
                return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
