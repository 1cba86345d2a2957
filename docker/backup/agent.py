"""The production stack's backup service (docker/compose.backup.yml).

`run` takes a snapshot of the site's data into the restic repository on the schedule the
xtask read from BACKUP_SCHEDULE: every BACKUP_EVERY seconds, counted from the last stored
snapshot, or at the times BACKUP_AT seconds past midnight UTC plus whole intervals. A
snapshot is staged as `cargo xtask backup` stages one (xtask/src/backup/contents.rs):
database.dump, manifest.json and media/ in one directory, so `backup list`, `verify` and
`restore` read both alike. A snapshot that fails is not stored and nothing is pruned after it.

`health` fails when the last stored snapshot is older than two intervals (with
BACKUP_HEALTHY_WHILE_STORING, as on Swarm, not while a snapshot is being stored).
"""

import datetime
import hashlib
import json
import os
import pwd
import re
import subprocess
import sys
import time

STAGING = "/backup/staging"
DUMP = os.path.join(STAGING, "database.dump")
MANIFEST = os.path.join(STAGING, "manifest.json")
MEDIA = os.path.join(STAGING, "media")
RELEASE_RECORD = "/backup/release/released"
SECRETS = "/run/secrets"
STATE = "/tmp/backup-state.json"
USER = "snapshot"
TAG = "site"
# After a failed snapshot, the next try comes this soon (or one interval, if shorter).
RETRY = 300
# How long a restic command waits for another one's lock on the repository.
LOCK_WAIT = 60


class Failure(Exception):
    pass


def log(message):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    print(f"{now} UTC backup: {message}", flush=True)


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command == "health":
        sys.exit(health())
    if command != "run":
        sys.exit(f"usage: agent.py [run|health], not {command}")
    run()


def run():
    key, known_hosts = read_secret("backup_ssh_key"), read_secret("backup_known_hosts")
    read_file_variables()
    become_unprivileged()
    write_ssh_config(key, known_hosts)
    every, at = int(os.environ["BACKUP_EVERY"]), os.environ.get("BACKUP_AT") or None
    at = int(at) if at is not None else None
    state = {"started": time.time(), "every": every, "last_success": None, "last_error": None, "storing_since": None}
    # Saved before anything reaches the repository, which may take long to answer or never.
    save(state)
    # A run killed half-way leaves its lock in the repository, which would stop the pruning.
    unlock()
    state["last_success"] = latest_snapshot()
    save(state)
    log(f"every {every}s" + (f" at {at}s past midnight UTC" if at is not None else "") + f" into {shown_repository()}")
    retry_at = None
    while True:
        due = retry_at if retry_at is not None else next_due(time.time(), state["last_success"], every, at)
        while time.time() < due:
            time.sleep(min(5, max(0.1, due - time.time())))
        began = time.time()
        state["storing_since"] = began
        save(state)
        try:
            snapshot()
            # As restic dates the snapshot: the schedule does not drift by how long it took.
            state["last_success"], state["last_error"], retry_at = began, None, None
        except Failure as error:
            log(f"error: {error}")
            state["last_error"] = str(error)
            retry_at = time.time() + min(every, RETRY)
            unlock()
        state["storing_since"] = None
        save(state)


def next_due(now, last, every, at):
    """Now when no snapshot is known or the last is an interval old; else the next time."""
    if last is None or now - last >= every:
        return now
    if at is None:
        return last + every
    return at + -(-(now - at) // every) * every


def read_secret(name):
    path = os.path.join(SECRETS, name)
    try:
        with open(path, "rb") as secret:
            return secret.read()
    except FileNotFoundError:
        return b""


def read_file_variables():
    """On Swarm a secret is a file: NAME_FILE=/run/secrets/... becomes NAME (restic's
    password, pg_dump's, an S3 key), read while the agent still may."""
    for name, path in list(os.environ.items()):
        if name.endswith("_FILE") and path.startswith(SECRETS + "/") and not os.environ.get(name[:-5]):
            with open(path) as secret:
                os.environ[name[:-5]] = secret.read().rstrip("\n")


def become_unprivileged():
    """Root only reads the secrets: everything else runs as the image's `snapshot` user."""
    user = pwd.getpwnam(USER)
    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    os.environ["HOME"] = user.pw_dir
    os.umask(0o077)


def write_ssh_config(key, known_hosts):
    """ssh as restic runs it for sftp: repositories: the key only, no prompt, known hosts only."""
    if not key:
        return
    ssh = os.path.join(os.environ["HOME"], ".ssh")
    os.makedirs(ssh, mode=0o700, exist_ok=True)
    with open(os.path.join(ssh, "id"), "wb") as file:
        file.write(key)
    with open(os.path.join(ssh, "known_hosts"), "wb") as file:
        file.write(known_hosts)
    with open(os.path.join(ssh, "config"), "w") as file:
        file.write(
            "Host *\n  IdentityFile ~/.ssh/id\n  IdentitiesOnly yes\n  BatchMode yes\n  ConnectTimeout 20\n"
            "  StrictHostKeyChecking yes\n  UserKnownHostsFile ~/.ssh/known_hosts\n"
        )


def restic(*args, cwd=None):
    """restic on the repository; while another restic holds its lock (a `backup verify` run
    from the host), waits and tries again for a minute: restic itself gives up at once."""
    command = ["restic", *args]
    deadline = time.time() + LOCK_WAIT
    while True:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        if result.returncode == 0 or "repository is already locked" not in result.stderr or time.time() > deadline:
            return result
        time.sleep(2)


def checked(result, what):
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise Failure(f"cannot {what}: {' / '.join(lines) or 'exit status ' + str(result.returncode)}")
    return result.stdout


def shown_repository():
    """RESTIC_REPOSITORY with the password of a `scheme://user:password@` part as `***`."""
    return re.sub(r"^([a-z0-9]+:[a-z]+://[^/:@]+):[^/@]+@", r"\1:***@", os.environ["RESTIC_REPOSITORY"])


def unlock():
    result = restic("unlock")
    if result.returncode != 0 and "Is there a repository" not in result.stderr:
        log(f"restic unlock: {result.stderr.strip()}")


def latest_snapshot():
    """The time of the site's newest snapshot in the repository, None when there is none or
    the repository cannot be read."""
    result = restic("snapshots", "--json", "--host", os.environ["BACKUP_HOST"], "--tag", TAG)
    if result.returncode != 0:
        return None
    times = [parse_time(s.get("time", "")) for s in json.loads(result.stdout or "[]")]
    times = [t for t in times if t is not None]
    return max(times) if times else None


def parse_time(text):
    """restic's RFC 3339 time with nanoseconds, as seconds since the epoch."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    fraction = (match.group(2) or "0")[:6].ljust(6, "0")
    return datetime.datetime.fromisoformat(f"{match.group(1)}.{fraction}{zone}").timestamp()


def snapshot():
    started = time.time()
    clean()
    try:
        manifest = stage()
        stored = store(manifest)
    finally:
        clean()
    prune = restic("forget", "--prune", "--host", os.environ["BACKUP_HOST"], "--tag", TAG, *os.environ["BACKUP_FORGET"].split())
    if prune.returncode != 0:
        log(f"stored, but the retention policy failed: {prune.stderr.strip()}")
    rows = sum(manifest["tables"].values())
    media = sum(f["size"] for f in manifest["media"])
    log(
        f"snapshot {stored['snapshot_id'][:8]} of {len(manifest['tables'])} tables ({rows} rows) and "
        f"{len(manifest['media'])} media files ({media} bytes): {stored.get('data_added', 0)} bytes added "
        f"in {time.time() - started:.1f}s"
    )


def clean():
    for path in (DUMP, MANIFEST):
        if os.path.exists(path):
            os.remove(path)


def stage():
    """Dumps the database and writes the manifest beside the media volume's files."""
    checked(subprocess.run(["pg_dump", "--format=custom", "--file", DUMP], capture_output=True, text=True), "dump the database")
    with open(DUMP, "rb") as dump:
        head = dump.read(8)
    if head[:5] != b"PGDMP":
        raise Failure("pg_dump wrote no pg_dump archive")
    data = subprocess.run(["pg_restore", "--data-only", "--file=-", DUMP], capture_output=True)
    if data.returncode != 0:
        raise Failure(f"cannot read the dump's data: {data.stderr.decode(errors='replace').strip()}")
    postgres, tables = dump_counts(data.stdout)
    manifest = {
        "taken": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "release": release(),
        "postgres": postgres,
        "dump_format": f"pg_dump custom format {head[5]}.{head[6]}",
        "tables": tables,
        "media": media_files(),
    }
    with open(MANIFEST, "w") as file:
        file.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def dump_counts(text):
    """The server's version and each table's rows: the lines between `COPY ... FROM stdin;`
    and `\\.` (COPY's text format escapes newlines within a row)."""
    version, tables, current = None, {}, None
    for line in text.split(b"\n"):
        if current is not None:
            if line == b"\\.":
                tables[current[0]] = current[1]
                current = None
            else:
                current[1] += 1
            continue
        line = line.decode("utf-8", errors="replace")
        if line.startswith("-- Dumped from database version "):
            version = line[len("-- Dumped from database version "):].strip()
        elif line.startswith("COPY "):
            name = line[len("COPY "):].split(" (")[0]
            name = name[: -len(" FROM stdin;")] if name.endswith(" FROM stdin;") else name
            current = [name, 0]
    if current is not None:
        raise Failure(f"the dump's data ends inside table {current[0]}'s rows")
    if version is None:
        raise Failure("the dump does not say which server it was taken from")
    return version, tables


def media_files():
    """Every file of the media volume, by `/`-separated path, with its size and SHA-256."""
    files = []
    for directory, dirs, names in os.walk(MEDIA):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(directory, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            digest, size = hashlib.sha256(), 0
            try:
                with open(path, "rb") as file:
                    for block in iter(lambda: file.read(1 << 20), b""):
                        digest.update(block)
                        size += len(block)
            except OSError as error:
                raise Failure(f"cannot read media file {os.path.relpath(path, MEDIA)}: {error.strerror}")
            files.append({"path": os.path.relpath(path, MEDIA), "size": size, "sha256": digest.hexdigest()})
    return files


def release():
    """The release's version as a Swarm deploy names it (BACKUP_RELEASE), else the web
    image's id as the production stack's release record does ("image ID" line)."""
    if os.environ.get("BACKUP_RELEASE"):
        return os.environ["BACKUP_RELEASE"]
    try:
        with open(RELEASE_RECORD) as record:
            for line in record:
                if line.startswith("image "):
                    return line.split(None, 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def store(manifest):
    opened = restic("cat", "config")
    if opened.returncode != 0:
        if "wrong password" in opened.stderr:
            raise Failure(f"BACKUP_PASSWORD does not open the repository {shown_repository()}")
        if "Is there a repository at the following location?" not in opened.stderr:
            checked(opened, f"open the backup repository {shown_repository()}")
        checked(restic("init"), "create the backup repository")
    size = os.path.getsize(DUMP) + sum(f["size"] for f in manifest["media"])
    release_tag = manifest["release"].removeprefix("sha256:")[:12]
    out = checked(
        restic(
            "backup", "--json", "--host", os.environ["BACKUP_HOST"], "--tag", TAG,
            "--tag", f"release={release_tag}", "--tag", f"bytes={size}", "--tag", "scheduled", ".",
            cwd=STAGING,
        ),
        "store the snapshot",
    )
    for line in reversed(out.splitlines()):
        if '"summary"' in line:
            return json.loads(line)
    raise Failure(f"restic stored the snapshot but did not say its id: {out[-200:]}")


def save(state):
    with open(STATE + ".new", "w") as file:
        json.dump(state, file)
    os.chmod(STATE + ".new", 0o644)
    os.replace(STATE + ".new", STATE)


def health():
    try:
        with open(STATE) as file:
            state = json.load(file)
    except (OSError, ValueError):
        print("the backup agent has not started")
        return 1
    every, now = state["every"], time.time()
    since = state["last_success"] or state["started"]
    what = "the last stored snapshot" if state["last_success"] else "the agent's start, with no snapshot stored since,"
    storing = state.get("storing_since")
    if now - since > 2 * every and storing and os.environ.get("BACKUP_HEALTHY_WHILE_STORING"):
        # On Swarm an unhealthy task is killed: a first snapshot of a large volume would never end.
        print(f"{what} was {int(now - since)}s ago; a snapshot has been storing for {int(now - storing)}s")
        return 0
    if now - since > 2 * every:
        error = f": {state['last_error']}" if state["last_error"] else ""
        print(f"stale: {what} was {int(now - since)}s ago, more than two intervals of {every}s{error}")
        return 1
    print(f"{what} was {int(now - since)}s ago (interval {every}s)")
    return 0


if __name__ == "__main__":
    main()
