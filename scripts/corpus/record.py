#!/usr/bin/env python3
"""Record real interactive shell sessions and derive every SSM Session Manager log form.

Each scenario (corpus/scenarios/<name>.toml) is typed, key by key, into a real bash or
dash running on a pty, exactly the way a Session Manager user would type it. The pty
output is captured byte for byte (raw.bin); that is what the SSM agent's
`ipcTempFile.log` holds, up to one agent quirk (see agent_ipc_bytes). From it this
script derives, following
shared/docs/ssm-log-formats.md (sections 3, 4, 5) and the agent source it cites:

  s3.log                 `script <sid>.log -c "cat .../ipcTempFile.log"`, run for real
  s3-legacy.log          the same with the old util-linux header/footer (some scenarios)
  cloudwatch-upload.json non-streamed CloudWatch events (get-log-events JSON)
  cloudwatch-stream.json streamed CloudWatch events (1-second ticks, ANSI stripped)
  expected.json          the oracle: the commands the shell really received

Run as root on Linux with tmux, util-linux `script`, bash and dash installed:

    python3 scripts/corpus/record.py            # record everything
    python3 scripts/corpus/record.py --only bash-tab-completion
    python3 scripts/corpus/record.py --derive-only   # recompute forms from raw.bin/timing

Python 3.11, standard library only. See scripts/corpus/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIO_DIR = REPO / "corpus" / "scenarios"
CORPUS_DIR = REPO / "corpus"
EXAMPLES_DIR = REPO / "examples"

# Everything a recording touches lives under this directory (wiped before each scenario).
SANDBOX = Path("/tmp/sessionlake-rec")
# Where the SSM agent keeps its per-session files; used only while `script` runs (section 3.3).
SSM_ORCHESTRATION_ROOT = Path("/var/lib/amazon/ssm")

# --- constants of the agent model (agent 3.3.x, see the doc) -------------------------------
AGENT_READ_SIZE = 1024  # StreamDataPayloadSize: writePump reads the pty in 1024-byte chunks
AGENT_INITIAL_WAIT_S = 1.0  # writePump sleeps 1 s before its first read of the pty
STREAM_THRESHOLD = 33_000  # StreamMessageLengthThresholdInBytes
UPLOAD_THRESHOLD = 200_000  # MessageLengthThresholdInBytes
MAX_EVENTS_PER_CALL = 4  # maxNumberOfEventsPerCall
UPLOAD_FREQUENCY_S = 1.0  # UploadFrequency (ticker)
# Our choices for times the agent does not pin down (all relative to the recording start):
STREAM_TICK_PHASE_S = 0.5  # streaming ticker fires at 1.5 s, 2.5 s, ...
LOG_GENERATION_DELAY_S = 0.2  # shell exit -> `script` writes <sid>.log (S3 header time)
FILE_COMPLETE_DELAY_S = 0.6  # shell exit -> S3 upload done -> ptyTerminated signal to streaming
UPLOAD_START_DELAY_S = 0.5  # shell exit -> non-streamed CloudWatch StreamData starts
INGESTION_DELAY_MS = 42  # CloudWatch ingestionTime - event timestamp
CLOUDTRAIL_LEAD_S = 3  # StartSession eventTime precedes the shell start by this much

DEFAULT_KEY_DELAY_S = 0.05  # pause between keystrokes so the shell echoes each one
THINK_S = 0.6  # at least this long between a command's Enter and the next keystroke
QUIET_S = 0.35  # output is "settled" after this long without new bytes
SETTLE_TIMEOUT_S = 15.0


# =========================================================================================
# Scenarios
# =========================================================================================


@dataclasses.dataclass
class Scenario:
    """One declarative scenario file. Field docs are in scripts/corpus/README.md."""

    name: str
    description: str
    shell: str  # "bash", "dash", "zsh" or "fish"
    session_id: str
    principal: str  # IAM ARN of the caller (userIdentity.arn)
    run_as: str  # OS user the agent runs the shell as (runAsUser)
    target: str  # instance id
    region: str
    base_time: dt.datetime  # wall-clock time the recording start is mapped to
    steps: list[dict]
    width: int = 80
    height: int = 24
    ps1: str | None = None
    root_ps1: str = r"\[\e]0;\u@ip-10-0-0-12:\w\a\][\u@ip-10-0-0-12 \W]\$ "
    bracketed_paste: bool = True
    connect_resize: bool = True
    legacy_header: bool = False
    example: list[str] = dataclasses.field(default_factory=list)
    log_group: str = "/ssm/sessions"
    s3_prefix: str = "ssm-logs"
    document_name: str | None = None
    key_delay: float = DEFAULT_KEY_DELAY_S
    cleanup: list[str] = dataclasses.field(default_factory=list)
    expected: list[str] | None = None  # dash only: the oracle is declared here
    # Lines appended to the generated rc file (zsh: .zshrc, fish: config.fish, bash: rcfile):
    # prompt themes, plugins, key maps.
    rc: str = ""
    # Also derive `s3-crlost.log`: the S3 form after a text tool turned CRLF into LF and then
    # every remaining CR into LF (`\r\r\n` -> `\n\n`), as when pasted through a ticket.
    crlost: bool = False
    # Prompts of the nested shells `sudo su -`, `su - bob`, ... start (bash and zsh), by user;
    # root's defaults to `root_ps1` (bash) or a `[root@ip-10-0-0-12 dir]# ` prompt (zsh).
    user_prompts: dict = dataclasses.field(default_factory=dict)
    # Oracle entries that provably never ran, each {command, reason}: kept in `commands`,
    # listed under `excluded` in expected.json, and left out of the score for every form.
    oracle_excluded: list[dict] = dataclasses.field(default_factory=list)
    # Database servers the REPLs of the scenario talk to, started for the recording only,
    # with their data in the sandbox and reachable only on a unix socket or 127.0.0.1:
    # "postgres", "mariadb", "redis" (see `Services`).
    services: list[str] = dataclasses.field(default_factory=list)

    @staticmethod
    def load(path: Path) -> "Scenario":
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        raw.setdefault("name", path.stem)
        raw["base_time"] = dt.datetime.fromisoformat(raw["base_time"].replace("Z", "+00:00"))
        if isinstance(raw.get("example"), str):
            raw["example"] = [raw["example"]]
        known = {f.name for f in dataclasses.fields(Scenario)}
        unknown = set(raw) - known
        if unknown:
            raise SystemExit(f"{path}: unknown keys {sorted(unknown)}")
        sc = Scenario(**raw)
        sc.validate(path)
        return sc

    def validate(self, path: Path) -> None:
        if self.shell not in ("bash", "dash", "zsh", "fish"):
            raise SystemExit(f"{path}: shell must be bash, dash, zsh or fish")
        if self.shell == "dash" and self.expected is None:
            raise SystemExit(f"{path}: dash has no history; declare `expected = [...]`")
        if self.shell != "dash" and self.expected is not None:
            raise SystemExit(f"{path}: {self.shell} scenarios take their oracle from the history file")
        for entry in self.oracle_excluded:
            if set(entry) != {"command", "reason"} or not entry["reason"].strip():
                raise SystemExit(f"{path}: oracle_excluded entries are {{ command, reason }}")
        for p in self.cleanup:
            # Scenarios may create and delete their own scratch dirs, and nothing else.
            if not re.fullmatch(r"/tmp/[A-Za-z0-9._-]+", p) or p.startswith("/tmp/sessionlake-rec"):
                raise SystemExit(f"{path}: cleanup path {p!r} must be /tmp/<name>")
        for service in self.services:
            if service not in SERVICES:
                raise SystemExit(f"{path}: unknown service {service!r} (one of {sorted(SERVICES)})")
        for form in self.example:
            if form not in ("s3", "cloudwatch-stream", "cloudwatch-upload"):
                raise SystemExit(f"{path}: unknown example form {form!r}")
        for step in self.steps:
            kinds = {"run", "type", "keys", "paste", "resize", "profile"} & set(step)
            if len(kinds) != 1 or set(step) - kinds - {"wait", "bracketed", "delay"}:
                raise SystemExit(f"{path}: bad step {step!r}")

    @property
    def prompt(self) -> str:
        if self.ps1 is not None:
            return self.ps1
        if self.shell == "dash":
            return "$ "
        if self.shell == "zsh":
            # `%#` would show `#`: the recorder runs as root.
            return self.run_as + "@ip-10-0-0-12 %1~ %% "
        if self.shell == "fish":
            return ""  # fish's own default prompt (fish_prompt)
        return "[%s@ip-10-0-0-12 \\W]$ " % self.run_as


# =========================================================================================
# Recording: tmux -> script -> shell
# =========================================================================================


def build_sandbox(sc: Scenario) -> dict[str, Path]:
    """A throw-away HOME with a few files, and the recorder's private files."""
    if SANDBOX.exists():
        shutil.rmtree(SANDBOX)
    for p in sc.cleanup:
        shutil.rmtree(p, ignore_errors=True)
    rec = SANDBOX / ".rec"
    home = SANDBOX / "home" / sc.run_as
    rec.mkdir(parents=True)
    files = {
        "notes.txt": "remember: rotate the staging certificate before Friday\n"
        "ticket OPS-1432: disk usage alert on /var/log\n",
        "deploy.sh": "#!/bin/sh\necho \"deploying ${1:-staging}...\"\necho done\n",
        "app/README.md": "# billing-api\n\nRun `./deploy.sh staging` from the home directory.\n",
        "app/config.yaml": "service: billing-api\nport: 8080\nlog_level: info\n"
        "database:\n  host: db.internal\n  name: billing\n",
        "app/app.py": "import os\n\nPORT = int(os.environ.get('PORT', '8080'))\n",
        "app/logs/app.log": "".join(
            f"2026-03-13T{h:02d}:{m:02d}:00Z {lvl} request id={h * 60 + m} status={st}\n"
            for h in range(8, 12)
            for m, lvl, st in ((0, "INFO", 200), (15, "WARN", 429), (30, "INFO", 200), (45, "ERROR", 500))
        ),
        "app/logs/access.log": "10.0.1.5 - - [13/Mar/2026:09:00:01 +0000] \"GET /health HTTP/1.1\" 200 2\n" * 3,
        "data/report-2026-02.csv": "month,invoices\n2026-02,1312\n",
        "data/report-2026-03.csv": "month,invoices\n2026-03,1408\n",
        "data/résumé-café.txt": "UTF-8 file name\n",
        "projects/infra/main.tf": 'resource "aws_instance" "web" {}\n',
        "manual.txt": "".join(f"{i:3d}  section {i}: lorem ipsum dolor sit amet, ERROR codes\n" for i in range(1, 121)),
    }
    for rel, text in files.items():
        f = home / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
    (home / "deploy.sh").chmod(0o755)
    # Fixed mtimes so `ls -l` output is the same on every re-recording.
    stamp = (sc.base_time - dt.timedelta(days=1)).timestamp()
    for f in sorted(home.rglob("*"), reverse=True):
        os.utime(f, (stamp, stamp))
    os.utime(home, (stamp, stamp))
    return {"rec": rec, "home": home}


# Where the scenario's database servers listen: redis on a loopback port (its prompt shows
# `127.0.0.1:PORT>` as on a real host), postgres and mariadb on unix sockets only.
REDIS_PORT = 46379
SERVICES = ("postgres", "mariadb", "redis")


class Services:
    """The database servers a scenario's REPLs use (psql, mysql, redis-cli), each a private
    instance with its data under the sandbox, no network but loopback, stopped after the
    recording. Each starts with one small database so that `psql billing`, `mysql app` and
    `redis-cli -p PORT` have something to read."""

    def __init__(self, names: list[str], root: Path, home: Path):
        self.names = names
        self.home = home
        self.root = root / ".svc"
        self.procs: list[subprocess.Popen] = []
        self.logs: list = []  # the servers' log files, closed with them
        self.env: dict[str, str] = {}

    def __enter__(self) -> "Services":
        try:
            for name in self.names:
                getattr(self, "start_" + name)()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        pg = self.root / "pg"
        if (pg / "data" / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", "postgres", "--", PG_BIN + "/pg_ctl", "-D", str(pg / "data"),
                            "-m", "fast", "-w", "stop"], check=False, capture_output=True)
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        for log in self.logs:
            log.close()
        self.logs.clear()

    def wait_for(self, what: str, ready) -> None:
        deadline = time.monotonic() + 30
        while not ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start")
            time.sleep(0.2)

    def start_postgres(self) -> None:
        pg = self.root / "pg"
        pg.mkdir(parents=True)
        shutil.chown(pg, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*as_pg, PG_BIN + "/initdb", "-D", str(pg / "data"), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
        subprocess.run([*as_pg, PG_BIN + "/pg_ctl", "-D", str(pg / "data"), "-w", "-l", str(pg / "log"),
                        "-o", f"-c listen_addresses='' -k {pg}", "start"], check=True, capture_output=True)
        psql = [*as_pg, "psql", "-h", str(pg), "-U", "postgres", "-q", "-v", "ON_ERROR_STOP=1"]
        subprocess.run([*psql, "-c", "create database billing"], check=True, capture_output=True)
        subprocess.run([*psql, "-d", "billing", "-c",
                        "create table invoices(month text, n int); "
                        "insert into invoices values ('2026-02', 1312), ('2026-03', 1408);"],
                       check=True, capture_output=True)
        self.env["PGHOST"] = str(pg)

    def start_mariadb(self) -> None:
        db = self.root / "mariadb"
        db.mkdir(parents=True)
        sock = db / "mysqld.sock"
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={db / 'data'}", "--user=root",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, capture_output=True)
        log = open(db / "log", "wb")
        self.logs.append(log)
        self.procs.append(subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={db / 'data'}", f"--socket={sock}",
             "--skip-networking", "--user=root", f"--pid-file={db / 'pid'}"],
            stdout=log, stderr=log))
        self.wait_for("mariadbd", lambda: sock.exists())
        client = ["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root"]
        self.wait_for("mariadbd", lambda: subprocess.run([*client, "-e", "select 1"],
                                                          capture_output=True).returncode == 0)
        subprocess.run([*client, "-e",
                        "create database app; create table app.invoices(month text, n int); "
                        "insert into app.invoices values ('2026-02', 1312), ('2026-03', 1408);"],
                       check=True, capture_output=True)
        # Debian's /etc/mysql/my.cnf names the system socket, which MYSQL_UNIX_PORT does not
        # override: the client reads ~/.my.cnf (the sandbox HOME's) after it.
        (self.home / ".my.cnf").write_text(f"[client]\nsocket = {sock}\n", encoding="utf-8")

    def start_redis(self) -> None:
        rd = self.root / "redis"
        rd.mkdir(parents=True)
        log = open(rd / "log", "wb")
        self.logs.append(log)
        self.procs.append(subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", "",
             "--appendonly", "no", "--dir", str(rd)], stdout=log, stderr=log))
        self.wait_for("redis-server", lambda: subprocess.run(
            ["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True).stdout == b"PONG\n")
        subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "set", "deploy:last", "2026-03-18"],
                       check=True, capture_output=True)


PG_BIN = "/usr/lib/postgresql/15/bin"


def bash_rcfile(sc: Scenario, paths: dict[str, Path], ps1: str, nested: dict[str, str] | None = None) -> str:
    """The rcfile of the recorded bash: history is the oracle, so keep every line of it."""
    lines = [
        f"HISTFILE={shlex.quote(str(paths['rec'] / 'history'))}",
        "HISTTIMEFORMAT='%s '",
        "HISTCONTROL=",
        "HISTSIZE=100000",
        "HISTFILESIZE=100000",
        "shopt -s lithist cmdhist histappend",
        "PROMPT_COMMAND='history -a'",
        # Also append right before each command runs, so a nested shell (`sudo su` below)
        # writes its commands after the one that started it, and the final `exit` is kept.
        "trap 'history -a' DEBUG",
        f"PS1={shlex.quote(ps1)}",
        # Who each history entry ran as: PS0 is expanded once per command line read.
        f"PS0='$(printf \"%s\\n\" \"$USER\" >> {shlex.quote(str(paths['rec'] / 'users'))})'",
    ]
    if not sc.bracketed_paste:
        # bash 4.2 on Amazon Linux 2 has no bracketed paste; bash 5.2 turns it on by default.
        lines.append("bind 'set enable-bracketed-paste off'")
    lines.append(sc.rc)
    if nested is not None:
        lines.append(sudo_function("bash", nested))
    return "\n".join(lines) + "\n"


def sudo_function(shell: str, nested: dict[str, str]) -> str:
    """`sudo su`, `sudo su -`, `sudo -i`, `su - bob`, `sudo -u bob CMD` simulated by shell
    functions (no user change: the recorder runs as root throughout). `nested` maps a user to
    the command that starts a nested shell with that user's prompt."""
    sudo_cases = [(["su", "su -", "su - root", "-i", "-s"], nested["root"])]
    su_cases = [(["", "-", "-l", "- root"], nested["root"])]
    for user, cmd in nested.items():
        if user != "root":
            sudo_cases.append(([f"su - {user}", f"su {user}", f"-iu {user}", f"-i -u {user}"], cmd))
            su_cases.append(([f"- {user}", user, f"-l {user}"], cmd))
    if shell == "fish":
        def fish_fn(name: str, cases: list[tuple[list[str], str]], extra: list[str]) -> list[str]:
            out = [f"function {name}", '  switch "$argv"']
            for pats, cmd in cases:
                out += ["    case " + " ".join(shlex.quote(p) if p else "''" for p in pats), f"      {cmd}"]
            out += extra
            out += ["    case '*'", f"      echo '{name}: not simulated by the recorder' >&2; return 1", "  end", "end"]
            return out
        lines = fish_fn("sudo", sudo_cases, ["    case '-u *'", "      $argv[3..-1]"])
        lines += fish_fn("su", su_cases, [])
        return "\n".join(lines) + "\n"

    def sh_fn(name: str, cases: list[tuple[list[str], str]], extra: list[str]) -> list[str]:
        out = [f"{name}() {{", '  case "$*" in']
        for pats, cmd in cases:
            out.append("    " + "|".join(shlex.quote(p) if p else "''" for p in pats) + f") {cmd} ;;")
        out += extra
        out += [f"    *) echo '{name}: not simulated by the recorder' >&2; return 1 ;;", "  esac", "}"]
        return out

    lines = sh_fn("sudo", sudo_cases, ['    "-u "*) shift 2; "$@" ;;'])
    lines += sh_fn("su", su_cases, [])
    return "\n".join(lines) + "\n"


def zsh_rc(sc: Scenario, paths: dict[str, Path], prompt: str, nested: dict[str, str], main: bool) -> str:
    """The .zshrc of the recorded zsh: the history file is the oracle (every line, appended as
    it is entered, EXTENDED_HISTORY for the times). A nested shell's prompt wins over the
    scenario's theme."""
    lines = [
        f"HISTFILE={shlex.quote(str(paths['rec'] / 'history'))}",
        "HISTSIZE=100000",
        "SAVEHIST=100000",
        "setopt INC_APPEND_HISTORY EXTENDED_HISTORY",
        # Who each history entry ran as: preexec runs once per command line, like the entry.
        f"preexec() {{ print -r -- \"$USER\" >> {shlex.quote(str(paths['rec'] / 'users'))} }}",
    ]
    prompt_line = f"PROMPT={shlex.quote(prompt)}"
    lines += [prompt_line, sc.rc] if main else [sc.rc, prompt_line, "RPROMPT="]
    lines.append(sudo_function("zsh", nested))
    return "\n".join(lines) + "\n"


def fish_rc(sc: Scenario, nested: dict[str, str] | None) -> str:
    lines = [sc.rc]
    if nested is not None:
        lines.append(sudo_function("fish", nested))
    return "\n".join(lines) + "\n"


class Tmux:
    """A private tmux server (own socket) holding the one recorded pane."""

    def __init__(self, rec: Path):
        self.sock = rec / "tmux.sock"
        self.conf = rec / "tmux.conf"
        # No status line, so the pane is exactly width x height. (`window-size manual`
        # crashes tmux 3.3a without a client, so it is not set.)
        self.conf.write_text("set -g status off\n", encoding="utf-8")
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(rec)}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["tmux", "-S", str(self.sock), "-f", str(self.conf), *args],
            env=self.env,
            check=check,
            capture_output=True,
        )

    def alive(self) -> bool:
        return self("has-session", "-t", "rec", check=False).returncode == 0


def settle(raw: Path, minimum: float = 0.0, quiet: float = QUIET_S) -> None:
    """Wait until the shell stops writing (no new pty output for `quiet` seconds)."""
    start = time.monotonic()
    last_size, last_change = -1, start
    while True:
        now = time.monotonic()
        size = raw.stat().st_size if raw.exists() else 0
        if size != last_size:
            last_size, last_change = size, now
        if now - start >= minimum and now - last_change >= quiet:
            return
        if now - start > SETTLE_TIMEOUT_S:
            return
        time.sleep(0.02)


def record(sc: Scenario, out_raw: Path, out_timing: Path) -> tuple[float, Path]:
    """Type the scenario into a real shell. Returns (wall-clock start, history file)."""
    paths = build_sandbox(sc)
    with Services(sc.services, SANDBOX, paths["home"]) as services:
        return record_with(sc, paths, services.env, out_raw, out_timing)


def record_with(sc: Scenario, paths: dict[str, Path], service_env: dict[str, str], out_raw: Path,
                out_timing: Path) -> tuple[float, Path]:
    rec, home = paths["rec"], paths["home"]
    raw_with_header = rec / "script.out"
    timing = rec / "timing"

    env = {
        "HOME": str(home),
        "USER": sc.run_as,
        "LOGNAME": sc.run_as,
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM": "xterm-256color",  # what the agent sets (shell_unix.go)
        "LANG": "C.UTF-8",  # what the agent sets when LANG is unset
        "LESSHISTFILE": "-",
        # sqlite3 finds its history through getpwuid, not HOME: keep it in the sandbox.
        "SQLITE_HISTORY": str(home / ".sqlite_history"),
        # (node's default is ~/.node_repl_history too; said so that it never depends on HOME.)
        "NODE_REPL_HISTORY": str(home / ".node_repl_history"),
        # (psql, the mysql client and redis-cli default to these names in HOME too.)
        "PSQL_HISTORY": str(home / ".psql_history"),
        "MYSQL_HISTFILE": str(home / ".mysql_history"),
        "REDISCLI_HISTFILE": str(home / ".rediscli_history"),
    }
    env.update(service_env)
    if sc.shell == "bash":
        nested: dict[str, str] = {}
        prompts = {"root": sc.root_ps1, **sc.user_prompts}
        for user in prompts:
            nested[user] = f"USER={user} bash --noprofile --rcfile {shlex.quote(str(rec / f'{user}.bashrc'))} -i"
        for user, prompt in prompts.items():
            (rec / f"{user}.bashrc").write_text(bash_rcfile(sc, paths, prompt, nested), encoding="utf-8")
        rc = rec / "bashrc"
        rc.write_text(bash_rcfile(sc, paths, sc.prompt, nested), encoding="utf-8")
        env["SHELL"] = "/bin/bash"
        shell_cmd = f"bash --noprofile --rcfile {shlex.quote(str(rc))} -i"
    elif sc.shell == "zsh":
        root_prompt = "%{\x1b]0;root@ip-10-0-0-12: %~\a%}[root@ip-10-0-0-12 %1~]# "
        prompts = {"root": root_prompt, **sc.user_prompts}
        nested = {u: f"USER={u} ZDOTDIR={shlex.quote(str(rec / f'zdot-{u}'))} zsh -i" for u in prompts}
        for user, prompt in prompts.items():
            zdot = rec / f"zdot-{user}"
            zdot.mkdir()
            (zdot / ".zshrc").write_text(zsh_rc(sc, paths, prompt, nested, False), encoding="utf-8")
        zdot = rec / "zdot"
        zdot.mkdir()
        (zdot / ".zshrc").write_text(zsh_rc(sc, paths, sc.prompt, nested, True), encoding="utf-8")
        env["SHELL"] = "/bin/zsh"
        env["ZDOTDIR"] = str(zdot)
        shell_cmd = "zsh -i"
    elif sc.shell == "fish":
        # fish keeps its history under $XDG_DATA_HOME/fish/fish_history, its config under
        # $XDG_CONFIG_HOME/fish/config.fish. The recorder runs as root, which fish's default
        # prompt would show with `#`: root-ness follows $USER instead.
        conf = rec / "xdg-config" / "fish"
        conf.mkdir(parents=True)
        # fish sets $USER from the real uid at start; config.fish sets it to the simulated
        # user (nested shells get theirs through FISH_SIM_USER) and names the host like EC2.
        users = ["root", *sc.user_prompts]
        nested = {u: f"env FISH_SIM_USER={u} fish" for u in users}
        preamble = "\n".join([
            f"set -gx USER (set -q FISH_SIM_USER; and echo $FISH_SIM_USER; or echo {sc.run_as})",
            "set -e FISH_SIM_USER",
            'function fish_is_root_user; test "$USER" = root; end',
            "function prompt_hostname; echo ip-10-0-0-12; end",
            # The oracle: fish_history drops repeated commands (it keeps one entry per text),
            # so each command line fish is about to run is logged as fish hands it over.
            "function __sessionlake_rec --on-event fish_preexec",
            f"    printf '%s %s %s\\0' (date +%s) $USER \"$argv[1]\" >> {shlex.quote(str(rec / 'fish-preexec'))}",
            "end",
        ])
        (conf / "config.fish").write_text(preamble + "\n" + fish_rc(sc, nested), encoding="utf-8")
        env["SHELL"] = "/usr/bin/fish"
        env["XDG_CONFIG_HOME"] = str(rec / "xdg-config")
        env["XDG_DATA_HOME"] = str(rec / "xdg-data")
        env["XDG_CACHE_HOME"] = str(rec / "xdg-cache")
        shell_cmd = "fish -i"
    else:
        env["SHELL"] = "/bin/sh"
        env["PS1"] = sc.prompt  # dash would default to "# " for root
        shell_cmd = "dash -i"
    # The agent's pty (creack/pty, no termios changes) has IUTF8 off; tmux turns it on
    # for its panes, so turn it off again. It matters for tty-level erase in dash.
    inner = f"cd {shlex.quote(str(home))} && stty -iutf8 && exec {shell_cmd}"
    # util-linux 2.38 `script` writes its "Script started on ..." header and "Script done
    # on ..." footer into the -O file even with -q. They are stripped below with the help
    # of the timing file (whose byte counts cover exactly the pty output).
    script_cmd = [
        "script", "-q", "-f",
        "-T", str(timing),
        "-O", str(raw_with_header),
        "-c", inner,
    ]
    launch = "exec env -i " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + shlex.join(script_cmd)

    tmux = Tmux(rec)
    w, h = sc.width, sc.height
    if sc.connect_resize:
        # The agent's pty starts without a size; the client sends its size right after
        # connecting (SetSize -> SIGWINCH), which makes readline redraw the first prompt.
        w, h = sc.width + 20, sc.height + 6
    start_wall = time.time()
    tmux("new-session", "-d", "-s", "rec", "-x", str(w), "-y", str(h), launch)
    try:
        steps = list(sc.steps)
        if steps and "profile" in steps[0]:
            # shellProfile: the agent writes it to stdin at once, before any prompt.
            time.sleep(0.15)
            run_step(tmux, sc, steps.pop(0), raw_with_header)
        else:
            settle(raw_with_header, minimum=0.8)
        if sc.connect_resize:
            tmux("resize-window", "-t", "rec", "-x", str(sc.width), "-y", str(sc.height))
            settle(raw_with_header, minimum=0.3)
        for step in steps:
            run_step(tmux, sc, step, raw_with_header)
        deadline = time.monotonic() + 10
        while tmux.alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{sc.name}: shell did not exit; last step should be `exit`")
            time.sleep(0.1)
    finally:
        if tmux.alive():
            tmux("kill-server", check=False)

    data = raw_with_header.read_bytes()
    chunks = parse_timing(timing.read_text())
    total = sum(n for _, n in chunks)
    header_end = data.index(b"\n") + 1
    body, footer = data[header_end : header_end + total], data[header_end + total :]
    assert data.startswith(b"Script started on "), data[:80]
    assert footer.startswith(b"\nScript done on "), footer[:80]
    out_raw.write_bytes(body)
    out_timing.write_text(timing.read_text())
    if sc.shell == "fish":
        return start_wall, rec / "fish-preexec"
    return start_wall, rec / "history"


def run_step(tmux: Tmux, sc: Scenario, step: dict, raw: Path) -> None:
    delay = step.get("delay", sc.key_delay)
    wait = step.get("wait", 0.0)
    if "profile" in step:
        # Written in one go with a trailing "\n", like runShellProfile.
        tmux("send-keys", "-t", "rec", "-l", step["profile"])
        tmux("send-keys", "-t", "rec", "C-j")
        settle(raw, minimum=max(wait, 1.0))
        return
    if "run" in step or "type" in step:
        for ch in step.get("run", step.get("type")):
            if ch == "\n":
                # Let the shell print PS2 and re-arm readline before the next line, or
                # the tty itself would echo the typeahead (a real, but racy, effect).
                tmux("send-keys", "-t", "rec", "Enter")
                settle(raw, quiet=0.2)
            else:
                # A lone ";" argument would separate tmux commands; "\\;" is a literal one.
                tmux("send-keys", "-t", "rec", "-l", "\\;" if ch == ";" else ch)
            time.sleep(delay)
        if "run" in step:
            tmux("send-keys", "-t", "rec", "Enter")
            settle(raw, minimum=max(wait, THINK_S))
        else:
            settle(raw, minimum=wait, quiet=0.15)
        return
    if "keys" in step:
        for key in step["keys"]:
            tmux("send-keys", "-t", "rec", key)
            time.sleep(max(delay, 0.08))
        settle(raw, minimum=wait, quiet=0.25)
        return
    if "paste" in step:
        # Like a terminal paste: tmux turns LF into CR, and with -p wraps the text in
        # ESC[200~ ... ESC[201~ only if the application turned bracketed paste on.
        tmux("set-buffer", "-b", "recpaste", "--", step["paste"])
        args = ["paste-buffer", "-t", "rec", "-b", "recpaste", "-d"]
        if step.get("bracketed", True):
            args.append("-p")
        tmux(*args)
        settle(raw, minimum=wait, quiet=0.25)
        return
    if "resize" in step:
        cols, rows = step["resize"]
        tmux("resize-window", "-t", "rec", "-x", str(cols), "-y", str(rows))
        settle(raw, minimum=wait, quiet=0.25)
        return
    raise AssertionError(step)


def parse_timing(text: str) -> list[tuple[float, int]]:
    """Classic `script -T` format: '<seconds since previous chunk> <bytes>' per line."""
    out = []
    for line in text.splitlines():
        delay, n = line.split()
        out.append((float(delay), int(n)))
    return out


def timed_chunks(raw: bytes, timing: list[tuple[float, int]]) -> list[tuple[float, bytes]]:
    """(seconds since recording start, bytes) for every chunk the shell wrote."""
    t, pos, out = 0.0, 0, []
    for delay, n in timing:
        t += delay
        out.append((t, raw[pos : pos + n]))
        pos += n
    assert pos == len(raw), "timing file does not cover raw.bin"
    return out


# =========================================================================================
# The oracle
# =========================================================================================


def read_bash_history(path: Path) -> list[tuple[int, str]]:
    """Entries of a history file written with HISTTIMEFORMAT set and lithist on:
    '#<epoch>' lines start an entry; the entry may span several lines."""
    entries: list[tuple[int, list[str]]] = []
    for line in path.read_bytes().decode("utf-8", "surrogateescape").split("\n")[:-1]:
        m = re.fullmatch(r"#(\d+)", line)
        if m:
            entries.append((int(m.group(1)), []))
        else:
            entries[-1][1].append(line)
    return [(ts, "\n".join(lines)) for ts, lines in entries]


def unmetafy(b: bytes) -> bytes:
    """zsh stores bytes 0x83-0xA2 of a command as 0x83 (Meta) followed by the byte XOR 0x20."""
    out, i = bytearray(), 0
    while i < len(b):
        if b[i] == 0x83 and i + 1 < len(b):
            out.append(b[i + 1] ^ 0x20)
            i += 2
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


def read_zsh_history(path: Path) -> list[tuple[int, str]]:
    """EXTENDED_HISTORY entries `: <start>:<elapsed>;<command>`; a newline inside a command is
    stored as backslash + newline."""
    entries: list[tuple[int, str]] = []
    text = unmetafy(path.read_bytes()).decode("utf-8", "surrogateescape")
    lines = text.split("\n")[:-1]
    i = 0
    while i < len(lines):
        m = re.fullmatch(r": (\d+):\d+;(.*)", lines[i], re.S)
        assert m, f"not an extended history line: {lines[i]!r}"
        ts, parts = int(m.group(1)), [m.group(2)]
        while parts[-1].endswith("\\") and i + 1 < len(lines) and not re.match(r": \d+:\d+;", lines[i + 1]):
            parts[-1] = parts[-1][:-1]
            i += 1
            parts.append(lines[i])
        entries.append((ts, "\n".join(parts)))
        i += 1
    return entries


def read_fish_preexec(path: Path) -> list[tuple[int, str, str]]:
    """The recorder's fish_preexec log: `<epoch> <user> <command line>` records ended by NUL."""
    entries = []
    for record in path.read_bytes().decode("utf-8", "surrogateescape").split("\0")[:-1]:
        ts, user, cmd = record.split(" ", 2)
        entries.append((int(ts), cmd, user))
    return entries


def read_fish_history(path: Path) -> list[tuple[int, str]]:
    """fish_history: `- cmd: <text>` (backslash and newline escaped as `\\` and `\n`), then
    `  when: <epoch>` and optional `  paths:` lines."""
    entries: list[tuple[int, str]] = []
    cmd = None
    for line in path.read_bytes().decode("utf-8", "surrogateescape").split("\n"):
        if line.startswith("- cmd: "):
            raw, cmd, k = line[len("- cmd: "):], [], 0
            while k < len(raw):
                if raw[k] == "\\" and k + 1 < len(raw):
                    cmd.append({"n": "\n", "\\": "\\"}.get(raw[k + 1], "\\" + raw[k + 1]))
                    k += 2
                else:
                    cmd.append(raw[k])
                    k += 1
            cmd = "".join(cmd)
        elif line.startswith("  when: ") and cmd is not None:
            entries.append((int(line.split()[1]), cmd))
            cmd = None
    return entries


# REPLs whose history files are read after a recording, and how each stores its lines.
REPL_HISTORY_FILES = [
    ("sqlite3", ".sqlite_history", "readline"),
    ("python", ".python_history", "readline"),
    ("node", ".node_repl_history", "node"),
    ("psql", ".psql_history", "psql"),
    ("mysql", ".mysql_history", "libedit"),
    ("irb", ".irb_history", "irb"),
    ("redis-cli", ".rediscli_history", "readline"),
]


def unvis(entry: str) -> str:
    """libedit's strvis encoding undone (`\\040` a space, `\\134` a backslash)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), entry)


def read_repl_history(path: Path, layout: str) -> list[str]:
    """A REPL's history file as the lines typed, oldest first, one entry per line typed:

    * readline (sqlite3, python, redis-cli's linenoise): one entry per line;
    * node: the same, newest first (it rewrites the file after each line);
    * psql: a query typed over several lines is one entry, its newlines stored as 0x01;
    * irb: a multi-line entry has a backslash at the end of each line but its last;
    * libedit (the mysql client): a `_HiStOrY_V2_` header, entries strvis-encoded; the client
      adds each line typed and then, for a statement typed over several lines, the whole
      statement (the lines joined by spaces), which was not typed: it is left out.
    """
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    entries = text.removesuffix("\n").split("\n") if text else []
    if layout == "node":
        return entries[::-1]
    if layout == "psql":
        return [line for entry in entries for line in entry.split("\x01")]
    if layout == "irb":
        return [entry.removesuffix("\\") for entry in entries]
    if layout == "libedit":
        if entries[:1] == ["_HiStOrY_V2_"]:
            entries = entries[1:]
        lines: list[str] = []
        statement: list[str] = []  # the lines of the statement being typed
        finished: list[str] = []  # those of the statement the last line finished
        for entry in map(unvis, entries):
            if len(finished) >= 2 and entry == " ".join(finished):
                finished = []
                continue
            lines.append(entry)
            statement.append(entry)
            finished = []
            if entry.rstrip().endswith((";", "\\G", "\\g")) or entry.startswith("\\"):
                finished, statement = statement, []
        return lines
    return entries


# Shells whose own history file is the oracle: its name in expected.json, what it holds, and
# its reader.
HISTORY_ORACLES = {
    "bash": (
        "bash-history",
        "commands exactly as bash stored them in its history file (lithist: multi-line "
        "commands keep their newlines; history expansion such as !! is already expanded); "
        "time = history timestamp mapped onto session_start, 1 s resolution",
        read_bash_history,
    ),
    "zsh": (
        "zsh-history",
        "commands exactly as zsh stored them in its history file (INC_APPEND_HISTORY, "
        "EXTENDED_HISTORY; multi-line commands keep their newlines); time = history "
        "timestamp mapped onto session_start, 1 s resolution",
        read_zsh_history,
    ),
}


def make_expected(sc: Scenario, start_wall: float | None, history: Path | None) -> dict:
    doc = {
        "session_id": sc.session_id,
        "scenario": sc.name,
        "shell": sc.shell,
        "target": sc.target,
        "principal": sc.principal,
        "run_as": sc.run_as,
        "region": sc.region,
        "session_start": iso_z(sc.base_time),
        "terminal": {"cols": sc.width, "rows": sc.height},
    }
    users: list[str] | None = None
    if sc.shell in HISTORY_ORACLES:
        doc["oracle"], doc["note"], read_history = HISTORY_ORACLES[sc.shell]
        entries = read_history(history)
    elif sc.shell == "fish":
        doc["oracle"] = "fish-preexec"
        doc["note"] = (
            "command lines exactly as fish handed them to its fish_preexec event (a "
            "multi-line buffer is one entry; fish_history keeps one entry per text, so it "
            "cannot count repeats); time = when the event fired, mapped onto session_start, "
            "1 s resolution"
        )
        logged = read_fish_preexec(history) if history.exists() else []
        entries = [(ts, cmd) for ts, cmd, _ in logged]
        users = [user for _, _, user in logged]
        fish_history = history.parent / "xdg-data" / "fish" / "fish_history"
        if fish_history.exists():
            # (fish_history drops a trailing space the preexec event still has.)
            missing = {c for _, c in read_fish_history(fish_history)} - {c.rstrip() for _, c in entries}
            assert not missing, f"{sc.name}: fish_history has commands fish_preexec never saw"
    else:
        doc["oracle"] = "scenario"
        doc["note"] = "dash keeps no history: the commands are the ones the scenario declares"
        entries = None
        doc["commands"] = [{"command": c, "time": None} for c in sc.expected]
    if entries is not None:
        doc["commands"] = [
            {"command": cmd, "time": iso_z(sc.base_time + dt.timedelta(seconds=ts - int(start_wall)))}
            for ts, cmd in entries
        ]
        users_file = history.parent / "users"
        if users is None and users_file.exists():
            users = users_file.read_text().split("\n")[:-1]
        if users is not None:
            # The shell's user, except for `sudo -u USER CMD`, which runs CMD as USER.
            if len(users) != len(entries):
                raise SystemExit(f"{sc.name}: {len(users)} users logged for {len(entries)} commands")
            for entry, user in zip(doc["commands"], users):
                m = re.match(r"sudo\s+-u\s*(\S+)\s+\S", entry["command"])
                entry["user"] = m.group(1) if m else user
    home = SANDBOX / "home" / sc.run_as
    repl = []
    for program, name, layout in REPL_HISTORY_FILES:
        path = home / name
        if path.exists():
            repl += [{"program": program, "command": c} for c in read_repl_history(path, layout)]
    if repl:
        doc["repl_oracle"] = "each program's own history file, in the order it wrote it"
        doc["repl"] = repl
    if sc.oracle_excluded:
        recorded = [c["command"] for c in doc["commands"]]
        for entry in sc.oracle_excluded:
            if entry["command"] not in recorded:
                raise SystemExit(f"{sc.name}: excluded {entry['command']!r} is not in the oracle")
        doc["excluded"] = [{"command": e["command"], "reason": e["reason"]} for e in sc.oracle_excluded]
    return doc


# =========================================================================================
# Agent model 1: what lands in ipcTempFile.log (shell.go processStdoutData)
# =========================================================================================


def go_decode_rune(b: bytes, i: int) -> tuple[int, int]:
    """Go utf8.DecodeRune: (rune, size); (0xFFFD, 1) for an invalid byte."""
    lead = b[i]
    if lead < 0x80:
        return lead, 1
    n = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
    if n and i + n <= len(b):
        try:
            return ord(b[i : i + n].decode("utf-8")), n
        except UnicodeDecodeError:
            pass
    return 0xFFFD, 1


def agent_ipc_bytes(chunks: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """Port of processStdoutData: the pty is read in <=1024-byte pieces; an incomplete UTF-8
    sequence at the end of a piece waits for the next one; an invalid byte passes alone.
    Quirk kept on purpose: a *valid* U+FFFD (EF BF BD) equals utf8.RuneError, so only its
    first byte (EF) is written and the other two are dropped. Bytes still pending when the
    shell exits are never written."""
    out, pending = [], b""
    for t, data in chunks:
        t = max(t, AGENT_INITIAL_WAIT_S)  # nothing is read before writePump wakes up
        for k in range(0, len(data), AGENT_READ_SIZE):
            buf = pending + data[k : k + AGENT_READ_SIZE]
            done, i = bytearray(), 0
            while i < len(buf):
                r, size = go_decode_rune(buf, i)
                if r == 0xFFFD:
                    if len(buf) - i < 4:  # utf8.UTFMax: maybe completed by the next read
                        break
                    done += buf[i : i + 1]
                else:
                    done += buf[i : i + size]
                i += size
            pending = buf[i:]
            if done:
                out.append((t, bytes(done)))
    return out


# =========================================================================================
# Agent model 2: the S3 object (shell_unix.go generateLogData)
# =========================================================================================


def generate_s3_log(sc: Scenario, ipc: bytes, end_time: dt.datetime) -> bytes:
    """Run `script <sid>.log -c "cat <ipc path>"` for real, like the agent does through Go
    os/exec (stdin and stdout are /dev/null there; stderr is captured).

    The only bytes we change are the two timestamps in the header and footer: `script`
    prints this machine's clock, which we replace by the simulated session end so every
    form agrees with the scenario's base_time and re-recordings stay stable."""
    created: list[Path] = []
    orch = SSM_ORCHESTRATION_ROOT / sc.target / "session" / "orchestration" / sc.session_id / "Standard_Stream"
    if orch.exists():
        raise SystemExit(f"{orch} already exists; not touching it")
    p = orch
    while not p.exists():
        created.append(p)
        p = p.parent
    try:
        orch.mkdir(parents=True, exist_ok=True)
        ipc_path = orch / "ipcTempFile.log"
        log_path = orch / f"{sc.session_id}.log"
        ipc_path.write_bytes(ipc)
        subprocess.run(
            ["script", str(log_path), "-c", f"cat {ipc_path}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "TZ": "UTC"},
            check=True,
        )
        data = log_path.read_bytes()
    finally:
        shutil.rmtree(orch, ignore_errors=True)
        for d in created[1:]:  # created[0] is orch itself; remove the parents we made
            if d.exists() and not any(d.iterdir()):
                d.rmdir()
    stamp = end_time.strftime("%Y-%m-%d %H:%M:%S+00:00").encode()
    head, _, rest = data.partition(b"\n")
    body, sep, foot = rest.rpartition(b"\nScript done on ")
    assert sep, "no `Script done` footer"
    head = re.sub(rb"^Script started on \S+ \S+ ", b"Script started on " + stamp + b" ", head)
    foot = re.sub(rb"^\S+ \S+ ", stamp + b" ", foot)
    return head + b"\n" + body + sep + foot


def legacy_header(s3: bytes, end_time: dt.datetime) -> bytes:
    """Old util-linux (Amazon Linux 2) header/footer, e.g. `Script started on
    2021-08-24 09:12:51+0000`. We cannot run an old util-linux here, so only the header
    and footer lines of the real output are rewritten; the body is untouched."""
    stamp = end_time.strftime("%Y-%m-%d %H:%M:%S+0000").encode()
    _, _, rest = s3.partition(b"\n")
    body, sep, _ = rest.rpartition(b"\nScript done on ")
    return b"Script started on " + stamp + b"\n" + body + sep + stamp + b"\n"


# =========================================================================================
# Agent model 3: CloudWatch Logs (cloudwatchlogsservice.go StreamData/getNextMessage)
# =========================================================================================

# CSI functions pborman/ansi validates: final bytes (with intermediates) -> (NParam, MinParam),
# generated from vendor/github.com/pborman/ansi/ansi.go (agent 1c217c8). NParam -1 = any.
# A CSI whose code is not listed is never validated.
ANSI_CSI_PARAMS: dict[bytes, tuple[int, int]] = {
    k.encode(): v
    for k, v in {
        "@": (1, 0), "A": (1, 0), "B": (1, 0), "C": (1, 0), "D": (1, 0), "E": (1, 0),
        "F": (1, 0), "G": (1, 0), "H": (2, 0), "I": (1, 0), "J": (1, 0), "K": (1, 0),
        "L": (1, 0), "M": (1, 0), "N": (1, 0), "O": (1, 0), "P": (1, 0), "Q": (1, 0),
        "R": (2, 0), "S": (1, 0), "T": (1, 0), "U": (1, 0), "V": (1, 0), "W": (-1, 0),
        "X": (1, 0), "Y": (1, 0), "Z": (1, 0), "[": (1, 0), "\\": (1, 0), "]": (1, 0),
        "^": (1, 0), "`": (1, 0), "a": (1, 0), "b": (1, 0), "c": (1, 0), "d": (1, 0),
        "e": (1, 0), "f": (2, 0), "g": (1, 0), "h": (-1, 0), "i": (1, 0), "j": (1, 0),
        "k": (1, 0), "l": (-1, 0), "m": (-1, 0), "n": (1, 0), "o": (-1, 0),
        " @": (1, 0), " A": (1, 0), " B": (2, 0), " C": (1, 1), " D": (2, 0), " E": (1, 1),
        " F": (-1, 0), " G": (2, 2), " H": (-1, 0), " I": (1, 0), " J": (1, 0), " K": (1, 0),
        " L": (1, 0), " M": (1, 1), " O": (1, 1), " P": (1, 0), " Q": (1, 0), " R": (1, 0),
        " S": (2, 0), " T": (2, 2), " U": (1, 1), " V": (1, 1), " W": (1, 1), " X": (1, 0),
        " Y": (2, 0), " Z": (1, 0), " [": (1, 1), " \\": (1, 0), " ]": (-1, 0), " ^": (1, 1),
        " _": (1, 0), " `": (1, 1), " a": (1, 1), " b": (1, 1), " c": (2, 1), " d": (1, 1),
        " e": (1, 0), " f": (1, 0), " g": (1, 1), " h": (1, 1), " i": (1, 1), " j": (1, 1),
        " k": (2, 2),
    }.items()
}


def ansi_decode(b: bytes, i: int) -> tuple[int, bool, str | None]:
    """One step of pborman/ansi Decode (the version vendored in the agent).
    Returns (next index, is_plain_text, error or None)."""
    n = len(b)
    j = i
    while j < n and b[j] != 0x1B and b[j] & 0xE0 != 0x80:  # 0x80-0x9F count as C1
        j += 1
    if j > i:
        return j, True, None
    c = b[i]
    if c == 0x9B:  # single-byte CSI
        return _ansi_csi(b, i + 1)
    if c != 0x1B:  # single-byte C1, e.g. a UTF-8 continuation byte
        return _ansi_specials(b, bytes([0x1B, c - 0x40]), i + 1), False, None
    if i + 1 == n:
        return n, False, "LoneEscape"
    c1 = b[i + 1]
    if c1 == ord("["):
        return _ansi_csi(b, i + 2)
    if c1 in b"_P]^X":
        # Control string (OSC, DCS, ...): only ESC \ ends it. A BEL-terminated OSC is
        # therefore "missing string terminator" and swallows the rest of the line.
        rest = b[i + 2 :]
        t, err = rest.find(b"\x1b\\"), None
        if t < 0:
            t, err = len(rest), "NoST"
        k = rest[:t].find(b"\x1bX")
        if k >= 0:
            t, err = k, "FoundSOS"
        if err != "NoST":
            t += 2
        return i + 2 + t, False, err
    if 0x40 <= c1 <= 0x5F:  # two-byte C1
        return _ansi_specials(b, b[i : i + 2], i + 2), False, None
    if 0x60 <= c1 <= 0x7E:  # independent control function
        return i + 2, False, None
    return i + 2, False, "UnknownEscape"  # e.g. ESC = , ESC 7, ESC ( B


def _ansi_specials(b: bytes, code: bytes, nxt: int) -> int:
    """SS2 (ESC N / 0x8E) and SS3 (ESC O / 0x8F) swallow the following byte."""
    if code in (b"\x1bN", b"\x1bO") and nxt < len(b):
        return nxt + 1
    return nxt


def _ansi_csi(b: bytes, p: int) -> tuple[int, bool, str | None]:
    n = len(b)
    j = p
    while j < n and 0x30 <= b[j] <= 0x3F:
        j += 1
    params = b[p:j] if j > p else None
    if j == n:
        return n, False, "IncompleteCSI"  # code stays "ESC [": never validated
    err, k = "IncompleteCSI", j
    while k < n:
        if 0x40 <= b[k] <= 0x7E:
            err = None
            break
        if b[k] < 0x20 or b[k] > 0x2F:
            err = "UnknownEscape"
            break
        k += 1
    final = b[j : k + 1]
    nxt = min(k + 1, n)
    # Parameter-count validation (a deferred func in Go that can replace err).
    spec = ANSI_CSI_PARAMS.get(final)
    if spec is not None:
        nparams = 0
        if params is not None:
            nparams = len(params.split(b";")) if params[0] <= 0x3B else 1
        nparam, minparam = spec
        if nparam == 0 and nparams > 0:
            err = "ExtraParameters"
        elif nparams < minparam:
            err = "MissingParameters"
        elif nparam != -1 and nparams > nparam:
            err = "ExtraParameters"
    return nxt, False, err


def ansi_strip(line: bytes) -> tuple[bytes, bool]:
    """pborman/ansi Strip: (plain text, had_error). C0 controls (\\b, BEL, \\r) are kept."""
    out, i, had_error = [], 0, False
    while i < len(line):
        i2, plain, err = ansi_decode(line, i)
        if err:
            had_error = True
        if plain:
            out.append(line[i:i2])
        i = i2
    return b"".join(out), had_error


def process_message(line: bytes, strip: bool) -> bytes:
    """processMessage: on any Strip error the ORIGINAL line is kept."""
    if not strip:
        return line
    stripped, had_error = ansi_strip(line)
    return line if had_error else stripped


def self_test() -> None:
    """Executable notes on the ports above (expected values derived by hand from the Go)."""
    assert ansi_strip(b"\x1b[01;34mdir\x1b[0m\r\n") == (b"dir\r\n", False)
    assert ansi_strip(b"\x1b[?2004hsh-4.2$ \r\x1b[Ksh-4.2$ ls\n") == (b"sh-4.2$ \rsh-4.2$ ls\n", False)
    assert ansi_strip(b"a\x08\x1b[Kb\x07\n") == (b"a\x08b\x07\n", False)  # C0 kept
    assert ansi_strip(b"\x1b]0;title\x1b\\x\n") == (b"x\n", False)  # OSC ended by ST
    assert ansi_strip(b"\x1b]0;title\x07x\n")[1]  # OSC ended by BEL: NoST
    assert process_message(b"\x1b]0;t\x07[root@h ~]# ls\n", True) == b"\x1b]0;t\x07[root@h ~]# ls\n"
    assert ansi_strip(b"\x1b(B\x1b[m")[1]  # ESC ( is an unknown escape
    assert ansi_strip(b"\x1b[1;2K")[1]  # EL takes one parameter
    assert ansi_strip(b"\x1b[?1049h\x1b[22;0;0t") == (b"", False)
    assert ansi_strip("日".encode()) == (b"\xe6\xa5", False)  # 0x97 is a C1 control
    assert ansi_strip("🎉".encode()) == (b"\xf0", False)  # 0x9F C1, 0x8E SS2 eats 0x89
    assert ansi_strip(b"a\x1b") == (b"a", True)  # LoneEscape
    assert ansi_strip(b"\x1b[1\x08x") == (b"x", True)  # a CSI cut by a control byte: UnknownEscape
    assert ansi_strip(b"\x9b2Kx") == (b"x", False)  # single-byte CSI
    assert ansi_strip(b"\x1b]0;a\x1bXb\x1b\\c") == (b"bc", True)  # FoundSOS ends the string at ESC X
    assert go_json_string(b"<a&b>\x1b\x08\xff") == '"\\u003ca\\u0026b\\u003e\\u001b\\b\\ufffd"'
    assert read_slice(b"ab\ncd", 0, 33000) == (b"ab\n", 3, None)
    assert read_slice(b"abcd", 0, 2) == (b"ab", 2, "full")
    assert [c for _, c in agent_ipc_bytes([(0.0, "x\ufffdy".encode())])] == [b"x\xefy"]


def go_json_string(b: bytes) -> str:
    """Go encoding/json (Go 1.22, escapeHTML on) encoding of a Go string holding `b`."""
    out = ['"']
    short = {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0C: "\\f", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}
    i = 0
    while i < len(b):
        c = b[i]
        if c < 0x80:
            if c in short:
                out.append(short[c])
            elif c < 0x20 or c in b"<>&":
                out.append("\\u%04x" % c)
            else:
                out.append(chr(c))
            i += 1
            continue
        r, size = go_decode_rune(b, i)
        if r == 0xFFFD and size == 1:
            out.append("\\ufffd")
        elif r in (0x2028, 0x2029):
            out.append("\\u%04x" % r)
        else:
            out.append(chr(r))
        i += size
    out.append('"')
    return "".join(out)


def go_string(b: bytes) -> str:
    """A Go string as a JSON client sees it: each invalid UTF-8 byte becomes U+FFFD."""
    out, i = [], 0
    while i < len(b):
        r, size = go_decode_rune(b, i)
        out.append(chr(r))
        i += size
    return "".join(out)


def read_slice(data: bytes, pos: int, size: int) -> tuple[bytes, int, str | None]:
    """bufio.Reader(size).ReadSlice('\\n') -> (line, new pos, None | 'full' | 'eof')."""
    nl = data.find(b"\n", pos, pos + size)
    if nl >= 0:
        return data[pos : nl + 1], nl + 1, None
    if len(data) - pos >= size:
        return data[pos : pos + size], pos + size, "full"
    return data[pos:], len(data), "eof"


class CloudWatchStreamer:
    """State of one StreamData call; `tick` is one getNextMessage + successful upload."""

    def __init__(self, structured: bool, build_event):
        self.structured = structured
        self.threshold = STREAM_THRESHOLD if structured else UPLOAD_THRESHOLD
        self.build_event = build_event  # (message bytes, file_complete) -> message str
        self.last_known = 0
        self.current = 0
        self.done = False

    def tick(self, data: bytes, file_complete: bool) -> list[str]:
        pos = 0
        if self.last_known > 0:  # skip to the last uploaded line
            last_line = 0
            _, pos, err = read_slice(data, pos, self.threshold)
            while err in (None, "full"):
                last_line += 1
                if last_line == self.last_known:
                    break
                _, pos, err = read_slice(data, pos, self.threshold)
        events, message, err = [], b"", None
        while True:
            line, pos, err = read_slice(data, pos, self.threshold)
            if err == "eof" and (len(line) == 0 or not file_complete):
                break  # the trailing partial line waits for the end of the session
            line = process_message(line, strip=self.structured)
            if len(message) + len(line) > self.threshold:
                events.append(self.build_event(message, file_complete))
                if len(events) >= MAX_EVENTS_PER_CALL:
                    self.last_known = self.current
                    return events
                message = b""
            message += line
            self.current += 1
        if message:
            events.append(self.build_event(message, file_complete))
        elif file_complete:
            self.done = True
        if events:
            self.last_known = self.current  # PutLogEvents succeeded
        return events


def cw_stream_events(sc: Scenario, ipc_chunks: list[tuple[float, bytes]], end_s: float) -> list[dict]:
    """Streaming (section 5.2): every second, the complete lines written so far."""
    complete_at = end_s + FILE_COMPLETE_DELAY_S
    tick_time = [0.0]

    def build(message: bytes, _complete: bool) -> str:
        text = message.replace(b"\t", b" ").replace(b"\r", b"")
        lines = text.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        when = sc.base_time + dt.timedelta(seconds=tick_time[0])
        fields = [
            ("eventVersion", go_json_string(b"1.0")),
            ("eventTime", go_json_string(when.strftime("%Y-%m-%dT%H:%M:%SZ").encode())),
            ("awsRegion", go_json_string(sc.region.encode())),
            ("target", '{"id":%s}' % go_json_string(sc.target.encode())),
            ("userIdentity", '{"arn":%s}' % go_json_string(sc.principal.encode())),
            ("runAsUser", go_json_string(sc.run_as.encode())),
            ("sessionId", go_json_string(sc.session_id.encode())),
            ("sessionData", "[" + ",".join(go_json_string(x) for x in lines) + "]"),
        ]
        return "{" + ",".join(f'"{k}":{v}' for k, v in fields) + "}"

    streamer = CloudWatchStreamer(structured=True, build_event=build)
    events, k = [], 1
    while not streamer.done:
        t = k * UPLOAD_FREQUENCY_S + STREAM_TICK_PHASE_S
        tick_time[0] = t
        data = b"".join(c for ct, c in ipc_chunks if ct <= t)
        for msg in streamer.tick(data, file_complete=t >= complete_at):
            events.append(cw_event(sc, t, msg))
        k += 1
        assert k < 100_000
    return events


def cw_upload_events(sc: Scenario, s3_log: bytes, end_s: float) -> list[dict]:
    """Upload at session end (section 4): the `script` file, whole lines, \\r\\n -> \\n,
    last \\n of every event dropped. No ANSI stripping."""

    def build(message: bytes, complete: bool) -> str:
        text = message.replace(b"\r\n", b"\n")
        if complete and message.endswith(b"\n"):
            text = text[:-1]
        return go_string(text)

    streamer = CloudWatchStreamer(structured=False, build_event=build)
    events, t = [], end_s + UPLOAD_START_DELAY_S
    while not streamer.done:
        t += UPLOAD_FREQUENCY_S
        for msg in streamer.tick(s3_log, file_complete=True):
            events.append(cw_event(sc, t, msg))
    return events


def cw_event(sc: Scenario, t: float, message: str) -> dict:
    ms = int((sc.base_time.timestamp() + t) * 1000)
    return {"timestamp": ms, "message": message, "ingestionTime": ms + INGESTION_DELAY_MS}


def get_log_events_json(sc: Scenario, events: list[dict]) -> str:
    """`aws logs get-log-events --output json` (the CLI prints indent=4, non-ASCII as is)."""
    digest = int(hashlib.sha256(sc.session_id.encode()).hexdigest(), 16)
    token = str(digest)[:56].rjust(56, "0")
    doc = {"events": events, "nextForwardToken": f"f/{token}/s", "nextBackwardToken": f"b/{token}/s"}
    return json.dumps(doc, indent=4, ensure_ascii=False) + "\n"


# =========================================================================================
# CloudTrail StartSession (section 6.1)
# =========================================================================================


def fake_id(prefix: str, seed: str, n: int, alphabet: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") -> str:
    h = hashlib.sha256(seed.encode()).digest()
    return prefix + "".join(alphabet[x % len(alphabet)] for x in h[:n])


def cloudtrail_start_session(sc: Scenario) -> dict:
    account = sc.principal.split(":")[4]
    when = sc.base_time - dt.timedelta(seconds=CLOUDTRAIL_LEAD_S)
    resource = sc.principal.split(":", 5)[5]
    if resource.startswith("assumed-role/"):
        _, role, session_name = resource.split("/", 2)
        role_id = fake_id("AROA", account + role, 17)
        identity = {
            "type": "AssumedRole",
            "principalId": f"{role_id}:{session_name}",
            "arn": sc.principal,
            "accountId": account,
            "accessKeyId": fake_id("ASIA", sc.session_id, 9) + "EXAMPLE",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": f"arn:aws:iam::{account}:role/{role}",
                    "accountId": account,
                    "userName": role,
                },
                "webIdFederationData": {},
                "attributes": {
                    "creationDate": iso_z(when - dt.timedelta(minutes=17)),
                    "mfaAuthenticated": "false",
                },
            },
        }
    else:
        user = resource.split("/")[-1]
        identity = {
            "type": "IAMUser",
            "principalId": fake_id("AIDA", account + user, 17),
            "arn": sc.principal,
            "accountId": account,
            "accessKeyId": fake_id("AKIA", account + user, 9) + "EXAMPLE",
            "userName": user,
        }
    request = {"target": sc.target}
    if sc.document_name:
        request["documentName"] = sc.document_name
    seed = uuid.uuid5(uuid.NAMESPACE_URL, "sessionlake:" + sc.session_id)
    return {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": iso_z(when),
        "eventSource": "ssm.amazonaws.com",
        "eventName": "StartSession",
        "awsRegion": sc.region,
        "sourceIPAddress": "203.0.113.%d" % (seed.bytes[0] % 200 + 10),
        "userAgent": "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0-18-amd64 exe/x86_64.debian.12 "
        "prompt/off command/ssm.start-session",
        "requestParameters": request,
        "responseElements": {
            "sessionId": sc.session_id,
            "tokenValue": "Value hidden due to security reasons.",
            "streamUrl": f"wss://ssmmessages.{sc.region}.amazonaws.com/v1/data-channel/"
            f"{sc.session_id}?role=publish_subscribe",
        },
        "requestID": str(uuid.uuid5(seed, "request")),
        "eventID": str(uuid.uuid5(seed, "event")),
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"ssm.{sc.region}.amazonaws.com",
        },
    }


def write_cloudtrail(scenarios: list[Scenario]) -> None:
    """One gzip JSON file per account/region/5-minute delivery window, like CloudTrail."""
    groups: dict[tuple, list[dict]] = {}
    for sc in scenarios:
        rec = cloudtrail_start_session(sc)
        when = dt.datetime.fromisoformat(rec["eventTime"].replace("Z", "+00:00"))
        window = when.replace(minute=when.minute - when.minute % 5, second=0) + dt.timedelta(minutes=5)
        groups.setdefault((rec["recipientAccountId"], sc.region, window), []).append(rec)
    out_root = EXAMPLES_DIR / "cloudtrail"
    if out_root.exists():
        shutil.rmtree(out_root)
    for (account, region, window), records in sorted(groups.items()):
        records.sort(key=lambda r: r["eventTime"])
        d = out_root / "AWSLogs" / account / "CloudTrail" / region / window.strftime("%Y/%m/%d")
        d.mkdir(parents=True, exist_ok=True)
        suffix = fake_id("", f"{account}{region}{window}", 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        name = f"{account}_CloudTrail_{region}_{window.strftime('%Y%m%dT%H%MZ')}_{suffix}.json.gz"
        payload = json.dumps({"Records": records}, separators=(",", ":")).encode()
        with open(d / name, "wb") as f:  # mtime 0: byte-stable output
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(payload)


# =========================================================================================
# Putting it together
# =========================================================================================


def iso_z(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def derive(sc: Scenario, out: Path) -> None:
    """All SSM forms of one recording (raw.bin + timing already in `out`)."""
    raw = (out / "raw.bin").read_bytes()
    chunks = timed_chunks(raw, parse_timing((out / "timing").read_text()))
    ipc_chunks = agent_ipc_bytes(chunks)
    ipc = b"".join(c for _, c in ipc_chunks)
    if ipc != raw:
        print(f"  note: the agent would write {len(ipc)} bytes, not {len(raw)} (U+FFFD quirk)")
    end_s = chunks[-1][0] if chunks else 0.0
    end_time = sc.base_time + dt.timedelta(seconds=end_s + LOG_GENERATION_DELAY_S)

    s3 = generate_s3_log(sc, ipc, end_time)
    (out / "s3.log").write_bytes(s3)
    if sc.crlost:
        (out / "s3-crlost.log").write_bytes(s3.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
    else:
        (out / "s3-crlost.log").unlink(missing_ok=True)
    if sc.legacy_header:
        (out / "s3-legacy.log").write_bytes(legacy_header(s3, end_time))
    else:
        (out / "s3-legacy.log").unlink(missing_ok=True)
    upload = get_log_events_json(sc, cw_upload_events(sc, s3, end_s))
    (out / "cloudwatch-upload.json").write_text(upload, encoding="utf-8")
    stream = get_log_events_json(sc, cw_stream_events(sc, ipc_chunks, end_s))
    (out / "cloudwatch-stream.json").write_text(stream, encoding="utf-8")
    check_forms(sc, out, ipc)

    for form in sc.example:
        if form == "s3":
            key = f"{sc.s3_prefix.strip('/')}/{sc.session_id}.log".lstrip("/")
            dest = EXAMPLES_DIR / "s3" / key
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / "s3.log", dest)
        else:
            group_dir = sc.log_group.strip("/").replace("/", "-")
            dest = EXAMPLES_DIR / "cloudwatch" / group_dir / f"{sc.session_id}.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / f"{form}.json", dest)


def check_forms(sc: Scenario, out: Path, ipc: bytes) -> None:
    """Cheap invariants, so a broken derivation is caught at once."""
    s3 = (out / "s3.log").read_bytes()
    body = s3.partition(b"\n")[2].rpartition(b"\nScript done on ")[0]
    # Through the second pty every \n (ONLCR) gains a \r: \r\n -> \r\r\n.
    assert body == ipc.replace(b"\n", b"\r\n"), f"{sc.name}: s3 body is not ONLCR(ipc)"
    up = json.loads((out / "cloudwatch-upload.json").read_text(encoding="utf-8"))["events"]
    joined = "\n".join(e["message"] for e in up) + "\n"
    assert joined == go_string(s3.replace(b"\r\n", b"\n")), f"{sc.name}: upload events do not rejoin"
    st = json.loads((out / "cloudwatch-stream.json").read_text(encoding="utf-8"))["events"]
    for e in st:
        msg = json.loads(e["message"])
        assert list(msg) == ["eventVersion", "eventTime", "awsRegion", "target", "userIdentity",
                             "runAsUser", "sessionId", "sessionData"]
        assert len(e["message"].encode()) < 256 * 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="scenario names (file stems)")
    ap.add_argument("--derive-only", action="store_true", help="reuse corpus/<sid>/raw.bin and timing")
    args = ap.parse_args()

    if os.geteuid() != 0:
        print("record.py: must run as root (it writes under /var/lib/amazon/ssm like the agent)", file=sys.stderr)
        return 2
    for tool in ("tmux", "script", "bash", "dash", "zsh", "fish"):
        if shutil.which(tool) is None:
            print(f"record.py: {tool} not found", file=sys.stderr)
            return 2

    self_test()
    all_scenarios = [Scenario.load(p) for p in sorted(SCENARIO_DIR.glob("*.toml"))]
    ids = [sc.session_id for sc in all_scenarios]
    assert len(ids) == len(set(ids)), "duplicate session ids"
    chosen = [sc for sc in all_scenarios if not args.only or sc.name in args.only]
    if args.only and len(chosen) != len(args.only):
        print("record.py: unknown scenario in --only", file=sys.stderr)
        return 2

    if not args.only and not args.derive_only:
        # A full run rebuilds every output: drop examples and corpus dirs of old scenarios.
        for sub in ("s3", "cloudwatch"):
            shutil.rmtree(EXAMPLES_DIR / sub, ignore_errors=True)
        for d in CORPUS_DIR.iterdir():
            if d.is_dir() and (d / "raw.bin").exists() and d.name not in ids:
                shutil.rmtree(d)

    for sc in chosen:
        out = CORPUS_DIR / sc.session_id
        out.mkdir(parents=True, exist_ok=True)
        print(f"{sc.name}: {sc.session_id}", flush=True)
        if not args.derive_only:
            try:
                start_wall, history = record(sc, out / "raw.bin", out / "timing")
                expected = make_expected(sc, start_wall, history if sc.shell != "dash" else None)
            finally:
                for p in sc.cleanup:
                    shutil.rmtree(p, ignore_errors=True)
            (out / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
            print(f"  {len(expected['commands'])} commands, {(out / 'raw.bin').stat().st_size} bytes")
        derive(sc, out)

    write_cloudtrail([sc for sc in all_scenarios if sc.example])
    if SANDBOX.exists():
        shutil.rmtree(SANDBOX)
    return 0


if __name__ == "__main__":
    sys.exit(main())
