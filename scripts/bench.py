"""Userfeed benchmark: the release binary against PostgreSQL's own COPY.

Run through scripts/bench, which builds the release binary, starts moto and
passes the environment. Every scenario runs `runs` times and reports the
median; baselines run in the same process on the same files, so ratios are
comparable even on a noisy machine. Prints a table, then one JSON line.
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

import boto3

BIN = os.environ["USERFEED_BIN"]
ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = "userfeed_bench"
DB_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + DB_NAME
MOTO = os.environ["MOTO_ENDPOINT"]

MAPPING = """
[columns]
external_id = "Employee ID"
email = "Email"
first_name = "First Name"
last_name = "Last Name"
managers = "Manager Emails"
groups = "Groups"

[profile]
department = "Department"
job_title = "Job Title"
"""
HEADER = "Employee ID,Email,First Name,Last Name,Status,Department,Job Title,Manager Emails,Groups\n"
DEPARTMENTS = ["Engineering", "Sales", "Support", "Finance", "People", "Legal", "Marketing"]
TITLES = ["Engineer", "Manager", "Analyst", "Specialist", "Director", "Associate"]
GROUPS = [f"G{i}" for i in range(1, 21)]


def expect(ok, what):
    """Stops the benchmark when a result is wrong (unlike `assert`, which
    `python -O` removes)."""
    if not ok:
        raise SystemExit(f"wrong result: {what}")


def log(msg):
    print(f"  {msg}", file=sys.stderr, flush=True)


def psql(sql, db=DB_URL, stdin=None):
    out = subprocess.run(
        ["psql", db, "-v", "ON_ERROR_STOP=1", "-qtAc", sql],
        stdin=stdin, capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"psql failed: {sql[:200]}\n{out.stderr}")
    return out.stdout.strip()


def userfeed(*args, env=None):
    """Runs the binary; returns (seconds, peak RSS in MiB, stdout, stderr)."""
    e = dict(os.environ, USERFEED_DATABASE_URL=DB_URL)
    e.update(env or {})
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([BIN, *args], env=e, stdout=out, stderr=err)
        _, _, rusage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return elapsed, rusage.ru_maxrss / 1024.0, out.read().decode(), err.read().decode()


def employee(i, rng, n, renamed=False):
    first = f"First{i}" + ("x" if renamed else "")
    managers = "|".join(f"user{m}@example.com" for m in rng.sample(range(n), rng.randint(0, 2)) if m != i)
    groups = "|".join(rng.sample(GROUPS, rng.randint(0, 3)))
    return (f"E{i},user{i}@example.com,{first},Last{i},Active,{rng.choice(DEPARTMENTS)},"
            f"{rng.choice(TITLES)},{managers},{groups}\n")


def generate(path, n, changed_every=0, removed_every=0):
    """n employees; with changed_every=100, 1% renamed; removed_every=200, 0.5% left out.
    The same seed gives every row the same managers, groups and department."""
    rng = random.Random(42)
    with open(path, "w", buffering=1 << 20) as f:
        f.write(HEADER)
        for i in range(n):
            row = employee(i, rng, n, renamed=bool(changed_every) and i % changed_every == 7)
            if removed_every and i % removed_every == 3:
                continue
            f.write(row)
    return os.path.getsize(path)


def import_file(tenant, path, db_env=None):
    """Imports `path`; returns (seconds, peak RSS MiB, upload, {phase: seconds})."""
    # The phase events (userfeed_apply_phase_seconds) say where the time went;
    # admin commands log them as text lines.
    env = {"RUST_LOG": "userfeed::telemetry=debug", "NO_COLOR": "1", **(db_env or {})}
    secs, rss, out, err = userfeed("import", "--tenant", tenant, "--json", path, env=env)
    try:
        up = json.loads(out)
    except json.JSONDecodeError:
        raise SystemExit(f"import failed:\n{out}\n{err}")
    if up["state"] not in ("succeeded", "held"):
        raise SystemExit(f"import ended {up['state']}: {up.get('failure_reason')}")
    phases = {}
    for line in err.splitlines():
        m = PHASE.search(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if m:
            phases[m.group(1)] = float(m.group(2))
    return secs, rss, up, phases


PHASE = re.compile(r'phase="(\w+)" seconds=([0-9.e-]+)')


def show_phases(phases):
    return ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())


def setup_db():
    psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", db=ADMIN_URL)
    psql(f"CREATE DATABASE {DB_NAME}", db=ADMIN_URL)
    secs, _, out, err = userfeed("migrate")
    if "applied" not in out:
        raise SystemExit(f"migrate failed: {err}")


def add_tenant(slug, bucket="bench", db_env=None):
    userfeed("tenant", "add", "--tenant", slug, "--bucket", bucket, "--prefix", slug, "--match-on", "external_id",
             env=db_env)
    for g in GROUPS:
        userfeed("group", "add", slug, g, f"Group {g}", env=db_env)
    for field in ("department", "job_title"):
        userfeed("profile-field", "add", slug, field, "--type", "text", env=db_env)
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as m:
        m.write(MAPPING)
    _, _, out, err = userfeed("mapping", "set", "--tenant", slug, m.name, env=db_env)
    if "updated" not in out:
        raise SystemExit(f"mapping set failed: {err}")


def copy_baseline(path, indexed):
    psql("DROP TABLE IF EXISTS copy_bench")
    cols = "employee_id text, email text, first_name text, last_name text, status text, " \
           "department text, job_title text, managers text, groups text"
    if indexed:
        psql(f"CREATE TABLE copy_bench (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
             f"tenant_id bigint NOT NULL DEFAULT 1, {cols})")
        psql("CREATE UNIQUE INDEX ON copy_bench (tenant_id, lower(email))")
        psql("CREATE UNIQUE INDEX ON copy_bench (tenant_id, employee_id)")
        target = "copy_bench (employee_id, email, first_name, last_name, status, department, " \
                 "job_title, managers, groups)"
    else:
        psql(f"CREATE TABLE copy_bench ({cols})")
        target = "copy_bench"
    with open(path) as f:
        start = time.perf_counter()
        psql(f"COPY {target} FROM STDIN (FORMAT csv, HEADER)", stdin=f)
        return time.perf_counter() - start


# What a first load must store, by table, and how to pick one tenant's rows.
RESULT_TABLES = [
    ("users", "tenant_id = {t}"),
    ("user_managers", "user_id IN (SELECT id FROM users WHERE tenant_id = {t})"),
    ("group_memberships", "user_id IN (SELECT id FROM users WHERE tenant_id = {t})"),
    ("user_roles", "user_id IN (SELECT id FROM users WHERE tenant_id = {t})"),
]


def copy_result(slug, work):
    """The ceiling for writing what a first load stores: the rows the initial
    run of `slug` left in users, manager links, memberships and roles, dumped
    and COPYed into empty tables with the same columns, defaults and indexes
    (`LIKE ... INCLUDING ALL`; foreign keys are not copied, so the ceiling
    does not pay for them). Returns (seconds, rows)."""
    tenant = psql(f"SELECT id FROM tenants WHERE slug = '{slug}'")
    total_s, total_rows = 0.0, 0
    for table, where in RESULT_TABLES:
        dump = os.path.join(work, f"{table}.copy")
        with open(dump, "w") as f:
            out = subprocess.run(
                ["psql", DB_URL, "-v", "ON_ERROR_STOP=1", "-qc",
                 f"COPY (SELECT * FROM {table} WHERE {where.format(t=tenant)}) TO STDOUT"],
                stdout=f, stderr=subprocess.PIPE, text=True)
            if out.returncode != 0:
                raise SystemExit(f"dumping {table}: {out.stderr}")
        psql(f"DROP TABLE IF EXISTS copy_result_{table}; "
             f"CREATE TABLE copy_result_{table} (LIKE {table} INCLUDING ALL)")
        with open(dump) as f:
            start = time.perf_counter()
            psql(f"COPY copy_result_{table} FROM STDIN", stdin=f)
            total_s += time.perf_counter() - start
        total_rows += int(psql(f"SELECT count(*) FROM copy_result_{table}"))
        psql(f"DROP TABLE copy_result_{table}")
        os.remove(dump)
    return total_s, total_rows


def naive_rows_per_s(rows):
    """One INSERT ... ON CONFLICT per row, each its own round trip and commit."""
    psql("DROP TABLE IF EXISTS naive_bench")
    psql("CREATE TABLE naive_bench (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
         "external_id text UNIQUE, email text, first_name text, last_name text)")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        for i in range(rows):
            f.write(f"INSERT INTO naive_bench (external_id, email, first_name, last_name) VALUES "
                    f"('E{i}', 'user{i}@example.com', 'First{i}', 'Last{i}') ON CONFLICT (external_id) "
                    f"DO UPDATE SET email = EXCLUDED.email, first_name = EXCLUDED.first_name, "
                    f"last_name = EXCLUDED.last_name;\n")
    start = time.perf_counter()
    subprocess.run(["psql", DB_URL, "-qf", f.name], check=True, stdout=subprocess.DEVNULL)
    return rows / (time.perf_counter() - start)


def named_query(area, name):
    """A named statement of the daemon's SQL, read from its one home
    (worker/src/db/sql/postgres/<area>.sql): the lines after `-- name: <name>`
    and its comment header, up to the next named block."""
    path = os.path.join(os.path.dirname(__file__), "..", "worker", "src", "db", "sql", "postgres", area + ".sql")
    body, inside = [], False
    for line in open(path):
        if line.startswith(("-- name:", "-- fragment:")):
            if inside:
                break
            inside = line.split(":", 1)[1].strip() == name
            continue
        if inside and (body or not line.startswith("--")):
            body.append(line)
    sql = "".join(body).strip().rstrip(";")
    if not sql or "{{" in sql:
        raise SystemExit(f"{name} not found, or templated, in {path}")
    return sql


def claim_sql():
    """The claim query exactly as the daemon runs it, with the lease owner
    and length filled in."""
    return named_query("queue", "claim").replace("$1", "'bench'").replace("$2", "600")


def claims_per_s(tenants, backlog):
    """Claims per second with `tenants` tenants each `backlog` uploads deep:
    every claim must find the next tenant whose head upload is runnable."""
    psql(f"""
        INSERT INTO tenants (slug, bucket, key_prefix)
        SELECT 'cl-' || g, 'claims', 'cl-' || g || '/' FROM generate_series(1, {tenants}) g;
        INSERT INTO uploads (tenant_id, bucket, object_key, object_identity)
        SELECT t.id, 'claims', t.key_prefix || 'f' || k || '.csv', 'x'
        FROM tenants t, generate_series(1, {backlog}) k WHERE t.slug LIKE 'cl-%' ORDER BY k, t.id;
        ANALYZE uploads;
    """)
    # Each claim is followed by its upload finishing, as a worker's would,
    # and eight uploads are kept running (four workers in each of two pods),
    # so every claim walks past running heads as it would in production.
    finish = ("UPDATE uploads SET state = 'succeeded', finished_at = now() WHERE id = "
              "(SELECT min(id) FROM uploads WHERE state = 'running' AND lease_owner = 'bench');\n")
    claims = tenants * backlog
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write((claim_sql() + ";\n") * 8)
        f.write((claim_sql() + ";\n" + finish) * (claims - 8))
    start = time.perf_counter()
    subprocess.run(["psql", DB_URL, "-qf", f.name], check=True, stdout=subprocess.DEVNULL)
    secs = time.perf_counter() - start
    done = int(psql("SELECT count(*) FROM uploads WHERE state = 'succeeded' AND bucket = 'claims'"))
    if done != claims - 8:
        raise SystemExit(f"claims: {done} finished, expected {claims - 8}")
    # Per tenant, uploads ran in arrival order: each started after the previous ended.
    out_of_order = int(psql("""SELECT count(*) FROM uploads a JOIN uploads b
        ON a.tenant_id = b.tenant_id AND a.id < b.id AND b.started_at < a.finished_at
        WHERE a.bucket = 'claims' AND b.bucket = 'claims' AND a.state = 'succeeded'"""))
    if out_of_order:
        raise SystemExit(f"claims: {out_of_order} uploads started before an older one of their tenant ended")
    psql("DELETE FROM tenants WHERE slug LIKE 'cl-%'")
    return claims / secs


def aws():
    kw = dict(endpoint_url=MOTO, region_name="us-east-1",
              aws_access_key_id="testing", aws_secret_access_key="testing")
    s3 = boto3.client("s3", **kw)
    sqs = boto3.client("sqs", **kw)
    bucket = f"bench-{int(time.time())}"
    s3.create_bucket(Bucket=bucket)
    q = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return s3, bucket, q


def start_daemon(queue_url, port):
    env = dict(os.environ,
               USERFEED_DATABASE_URL=DB_URL, USERFEED_INTAKE_QUEUE_URL=queue_url,
               USERFEED_INTAKE_WAIT_TIME_SECONDS="1", USERFEED_AWS_ENDPOINT_URL=MOTO,
               USERFEED_AWS_S3_FORCE_PATH_STYLE="true", USERFEED_JOBS_POLL_INTERVAL_MS="50",
               USERFEED_JOBS_CONCURRENCY="4", USERFEED_HTTP_BIND=f"127.0.0.1:{port}",
               USERFEED_LOG_LEVEL="warn", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
    return subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def clone_tenants(template, prefix, count, bucket):
    """Tenants like `template` (mapping, groups, profile fields), made in SQL:
    2,000 CLI round trips would measure the CLI, not the queue."""
    psql(f"""
        INSERT INTO tenants (slug, bucket, key_prefix, match_key, mapping)
        SELECT '{prefix}' || g, '{bucket}', '{prefix}' || g || '/', match_key, mapping
        FROM tenants, generate_series(1, {count}) g WHERE slug = '{template}';
        INSERT INTO groups (tenant_id, group_key, name)
        SELECT t.id, g.group_key, g.name FROM tenants t, groups g
        WHERE t.slug LIKE '{prefix}%' AND g.tenant_id = (SELECT id FROM tenants WHERE slug = '{template}');
        INSERT INTO profile_fields (tenant_id, field_key, field_type)
        SELECT t.id, p.field_key, p.field_type FROM tenants t, profile_fields p
        WHERE t.slug LIKE '{prefix}%' AND p.tenant_id = (SELECT id FROM tenants WHERE slug = '{template}');
    """)


class Poller:
    """One long-lived psql session for polling: starting a psql process
    every 50 ms cost the two cores about as much CPU as the daemons' own
    work in `many_tenants` (measured: 2.5 s of 15 s), which the benchmark
    would then have charged to Userfeed."""

    def __init__(self):
        self.proc = None

    def scalar(self, sql):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(["psql", DB_URL, "-qtAX", "-v", "ON_ERROR_STOP=1"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, bufsize=1)
        self.proc.stdin.write(sql.rstrip(";") + ";\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"psql poller ended: {sql[:200]}")
        return line.strip()


POLLER = Poller()


def wait_done(prefix, expected, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = int(POLLER.scalar(
            f"SELECT count(*) FROM uploads u JOIN tenants t ON t.id = u.tenant_id "
            f"WHERE t.slug LIKE '{prefix}%' AND u.state IN ('succeeded','held','failed')"))
        if done >= expected:
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out: {done}/{expected} uploads of {prefix}* done")


def many_tenants(tenants, small_file, s3, bucket):
    """Uploads per second drained by two daemons, `tenants` tenants with one
    1,000-row file each: first loads, then the same file again (a nightly
    re-feed where nothing changed). The files are in (moto) S3 and their
    upload rows are recorded directly, as intake would have: moto's SQS
    takes about half a second per receive with 2,000 messages waiting
    (measured), which would measure moto instead of Userfeed. The SQS path
    is in `latency`. Returns (first loads per s, re-feeds per s)."""
    # A bucket of its own, without notifications: nothing may reach the
    # queue that `latency` measures next.
    bucket = f"{bucket}-mt"
    s3.create_bucket(Bucket=bucket)
    clone_tenants("bench-1", "mt-", tenants, bucket)
    body = open(small_file, "rb").read()
    for i in range(1, tenants + 1):
        s3.put_object(Bucket=bucket, Key=f"mt-{i}/hr.csv", Body=body)

    def record(identity):
        psql(f"""INSERT INTO uploads (tenant_id, source, bucket, object_key, object_identity)
                 SELECT id, 's3', '{bucket}', key_prefix || 'hr.csv', '{identity}'
                 FROM tenants WHERE slug LIKE 'mt-%' ORDER BY id""")

    daemons = [start_daemon("", 19100 + k) for k in range(2)]
    try:
        rates = []
        for night, identity in enumerate(["bench-night-1", "bench-night-2"], start=1):
            record(identity)
            start = time.perf_counter()
            wait_done("mt-", tenants * night, timeout=1800)
            rates.append(tenants / (time.perf_counter() - start))
        unchanged = int(psql("SELECT count(*) FROM uploads u JOIN tenants t ON t.id = u.tenant_id "
                             "WHERE t.slug LIKE 'mt-%' AND u.object_identity = 'bench-night-2' "
                             "AND u.state = 'succeeded' AND u.rows_unchanged = 1000"))
        if unchanged != tenants:
            raise SystemExit(f"re-feed: {unchanged}/{tenants} uploads found every row unchanged")
        return rates[0], rates[1]
    finally:
        for d in daemons:
            d.terminate()
        for d in daemons:
            d.wait()


def latency(drops, small_file, s3, bucket, queue_url):
    clone_tenants("bench-1", "lat-", 1, bucket)
    body = open(small_file, "rb").read()
    daemon = start_daemon(queue_url, 19200)
    time.sleep(1.0)
    out = []
    try:
        for i in range(drops):
            start = time.perf_counter()
            s3.put_object(Bucket=bucket, Key=f"lat-1/drop-{i}.csv", Body=body)
            wait_done("lat-", i + 1, timeout=120)
            out.append((time.perf_counter() - start) * 1000)
    finally:
        daemon.terminate()
        daemon.wait()
    return out


def embedded(path, rows, runs, work):
    """The embedded backend (SQLite) beside the PostgreSQL store on one file:
    first load and unchanged re-feed, each on a fresh tenant per run."""
    res = {"pg_initial": [], "pg_unchanged": [], "sqlite_initial": [], "sqlite_unchanged": []}
    for run in range(1, runs + 1):
        sqlite_url = f"sqlite:{os.path.join(work, f'embedded-{run}.db')}"
        for backend, db_env in (("pg", None), ("sqlite", {"USERFEED_DATABASE_URL": sqlite_url})):
            slug = f"embedded-{backend}-{run}"
            add_tenant(slug, db_env=db_env)
            s, _, up, _ = import_file(slug, path, db_env=db_env)
            expect(up["rows_created"] == rows, up)
            res[f"{backend}_initial"].append(s)
            s2, _, up, _ = import_file(slug, path, db_env=db_env)
            expect(up["rows_unchanged"] == rows, up)
            res[f"{backend}_unchanged"].append(s2)
            log(f"  run {run} {backend}: initial {s:.2f} s, unchanged {s2:.2f} s")
    return {k: statistics.median(v) for k, v in res.items()}


def embedded_summary(emb, emb_rows):
    out = {
        "embedded_rows": emb_rows,
        "embedded_pg_initial_s": round(emb["pg_initial"], 3),
        "embedded_pg_unchanged_s": round(emb["pg_unchanged"], 3),
        "embedded_sqlite_initial_s": round(emb["sqlite_initial"], 3),
        "embedded_sqlite_unchanged_s": round(emb["sqlite_unchanged"], 3),
        "sqlite_initial_vs_pg": round(emb["sqlite_initial"] / emb["pg_initial"], 2),
        "sqlite_unchanged_vs_pg": round(emb["sqlite_unchanged"] / emb["pg_unchanged"], 2),
    }
    rows = [
        (f"SQLite, {emb_rows:,} rows", f"{out['embedded_sqlite_initial_s']} s",
         f"first load; {out['sqlite_initial_vs_pg']}x PostgreSQL's {out['embedded_pg_initial_s']} s (target <= 3x)"),
        ("  the same file again", f"{out['embedded_sqlite_unchanged_s']} s",
         f"unchanged; {out['sqlite_unchanged_vs_pg']}x PostgreSQL's {out['embedded_pg_unchanged_s']} s"),
    ]
    return out, rows


def only_embedded(a):
    emb_rows = 20_000 if a.quick else 100_000
    work = tempfile.mkdtemp(prefix="userfeed-bench-")
    emb_file = os.path.join(work, "embedded.csv")
    generate(emb_file, emb_rows)
    setup_db()
    log(f"embedded backend: {emb_rows:,} rows on SQLite beside PostgreSQL")
    out, rows = embedded_summary(embedded(emb_file, emb_rows, a.runs, work), emb_rows)
    print(f"\nUserfeed benchmark, embedded backend: median of {a.runs} runs\n")
    for name, fig, note in rows:
        print(f"{name:<28} {fig:>18}   {note}")
    out["runs"] = a.runs
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-big", action="store_true",
                    help="skip the 10x memory file (its JSON keys are then null)")
    ap.add_argument("--only", choices=["embedded"],
                    help="run one part: embedded = SQLite beside PostgreSQL on one 100,000-row file")
    a = ap.parse_args()
    if a.only == "embedded":
        return only_embedded(a)
    rows = 100_000 if a.quick else 1_000_000
    big_rows = 300_000 if a.quick else 10_000_000
    tenants = 100 if a.quick else 2000
    drops = 10 if a.quick else 50
    naive = 5_000 if a.quick else 20_000

    work = tempfile.mkdtemp(prefix="userfeed-bench-")
    base, changed, small = (os.path.join(work, n) for n in ("base.csv", "changed.csv", "small.csv"))
    log(f"generating {rows:,} rows")
    size = generate(base, rows)
    generate(changed, rows, changed_every=100, removed_every=200)
    generate(small, 1000)

    setup_db()
    res = {"initial": [], "unchanged": [], "changed": [], "copy": [], "copy_indexed": [],
           "copy_result": [], "rss": []}
    phases = {}  # of the last run, per scenario
    for run in range(1, a.runs + 1):
        slug = f"bench-{run}"
        add_tenant(slug)
        log(f"run {run}: initial")
        s, rss, up, ph = import_file(slug, base)
        expect(up["rows_created"] == rows, up)
        res["initial"].append(s)
        res["rss"].append(rss)
        phases["initial"] = ph
        log(f"  {s:.2f} s, peak RSS {rss:.1f} MiB ({show_phases(ph)})")
        cr_s, cr_rows = copy_result(slug, work)
        res["copy_result"].append(cr_s)
        log(f"  COPY of what it stored: {cr_rows:,} rows in {cr_s:.2f} s")
        log(f"run {run}: unchanged")
        s, _, up, ph = import_file(slug, base)
        expect(up["rows_unchanged"] == rows, up)
        res["unchanged"].append(s)
        phases["unchanged"] = ph
        log(f"  {s:.2f} s ({show_phases(ph)})")
        log(f"run {run}: changed 1%")
        s, _, up, ph = import_file(slug, changed)
        expect(up["rows_updated"] == rows // 100 and up["rows_deactivated"] == rows // 200, up)
        res["changed"].append(s)
        phases["changed"] = ph
        log(f"  {s:.2f} s ({up['rows_updated']} updated, {up['rows_deactivated']} deactivated; "
            f"{show_phases(ph)})")
        log(f"run {run}: COPY baselines")
        res["copy"].append(copy_baseline(base, indexed=False))
        res["copy_indexed"].append(copy_baseline(base, indexed=True))
        log(f"  {res['copy'][-1]:.2f} s plain, {res['copy_indexed'][-1]:.2f} s indexed")
    psql("DROP TABLE IF EXISTS copy_bench")

    log(f"naive baseline: {naive:,} rows one statement each")
    naive_rate = statistics.median(naive_rows_per_s(naive) for _ in range(a.runs))

    rss_big = big_size = None
    if a.skip_big:
        big_rows = None
    else:
        log(f"peak memory with a {big_rows:,}-row file")
        big = os.path.join(work, "big.csv")
        big_size = generate(big, big_rows)
        add_tenant("bench-big")
        s, rss_big, _, _ = import_file("bench-big", big)
        log(f"  {s:.2f} s, peak RSS {rss_big:.1f} MiB")
        os.remove(big)

    emb_rows = 20_000 if a.quick else 100_000
    emb_file = os.path.join(work, "embedded.csv")
    generate(emb_file, emb_rows)
    log(f"embedded backend: {emb_rows:,} rows on SQLite beside PostgreSQL")
    emb = embedded(emb_file, emb_rows, a.runs, work)

    log(f"claims: {tenants} tenants x 5 queued uploads, each claimed and finished")
    claim_rate = claims_per_s(tenants, 5)

    s3, bucket, queue_url = aws()
    log(f"many tenants: {tenants} tenants x 1,000 rows, 2 daemons (uploads recorded directly)")
    mt_rate, mt_refeed_rate = many_tenants(tenants, small, s3, bucket)
    log(f"latency: {drops} drops of 1,000 rows through S3 + SQS")
    lat = sorted(latency(drops, small, s3, bucket, queue_url))

    med = {k: statistics.median(v) for k, v in res.items()}
    naive_s = rows / naive_rate
    out = {
        "rows": rows,
        "file_mib": round(size / 2**20, 1),
        "initial_s": round(med["initial"], 3),
        "unchanged_s": round(med["unchanged"], 3),
        "changed_1pct_s": round(med["changed"], 3),
        "copy_s": round(med["copy"], 3),
        "copy_indexed_s": round(med["copy_indexed"], 3),
        "copy_result_s": round(med["copy_result"], 3),
        "naive_rows_per_s": round(naive_rate),
        "initial_vs_copy_indexed": round(med["initial"] / med["copy_indexed"], 2),
        "initial_vs_copy_result": round(med["initial"] / med["copy_result"], 2),
        "unchanged_vs_copy": round(med["unchanged"] / med["copy"], 2),
        "changed_vs_copy": round(med["changed"] / med["copy"], 2),
        "speedup_vs_naive": round(naive_s / med["initial"], 1),
        "peak_rss_mib_1m": round(med["rss"], 1) if rows == 1_000_000 else None,
        "peak_rss_mib_rows": round(med["rss"], 1),
        "peak_rss_mib_10m": round(rss_big, 1) if big_rows == 10_000_000 else None,
        "peak_rss_mib_big": round(rss_big, 1) if rss_big is not None else None,
        "big_rows": big_rows,
        "big_file_mib": round(big_size / 2**20, 1) if big_size is not None else None,
        "many_tenants": tenants,
        "many_tenants_uploads_per_s": round(mt_rate, 1),
        "many_tenants_refeed_uploads_per_s": round(mt_refeed_rate, 1),
        "claims_per_s": round(claim_rate),
        "latency_p50_ms": round(lat[len(lat) // 2]),
        "latency_p95_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))]),
        "runs": a.runs,
    }
    emb_out, emb_table = embedded_summary(emb, emb_rows)
    out.update(emb_out)
    print(f"\nUserfeed benchmark: {rows:,} rows ({out['file_mib']} MiB), median of {a.runs} runs\n")
    table = [
        ("initial load", f"{out['initial_s']} s", f"{out['initial_vs_copy_indexed']}x COPY into an indexed table"),
        ("unchanged re-feed", f"{out['unchanged_s']} s", f"{out['unchanged_vs_copy']}x plain COPY"),
        ("1% changed, 0.5% removed", f"{out['changed_1pct_s']} s", f"{out['changed_vs_copy']}x plain COPY"),
        ("COPY, plain table", f"{out['copy_s']} s", "ingest ceiling"),
        ("COPY, indexed table", f"{out['copy_indexed_s']} s", "the file into one indexed table"),
        ("COPY of the result", f"{out['copy_result_s']} s",
         f"what a first load stores; initial is {out['initial_vs_copy_result']}x"),
        ("row-at-a-time worker", f"{out['naive_rows_per_s']} rows/s", f"Userfeed is {out['speedup_vs_naive']}x faster"),
        (f"peak RSS, {rows:,} rows", f"{out['peak_rss_mib_rows']} MiB", ""),
    ]
    if big_rows:
        table.append((f"peak RSS, {big_rows:,} rows", f"{out['peak_rss_mib_big']} MiB",
                      f"{out['big_file_mib']} MiB file"))
    table += emb_table + [
        (f"{tenants} tenants x 1,000 rows", f"{out['many_tenants_uploads_per_s']} uploads/s", "2 daemons, first loads"),
        ("  the same files again", f"{out['many_tenants_refeed_uploads_per_s']} uploads/s", "unchanged re-feeds"),
        ("claim query", f"{out['claims_per_s']} claims/s", f"{tenants} tenants, 5 queued each"),
        ("drop to applied", f"p50 {out['latency_p50_ms']} ms", f"p95 {out['latency_p95_ms']} ms"),
    ]
    for name, fig, note in table:
        print(f"{name:<28} {fig:>18}   {note}")
    print("\nwhere the time goes (last run):")
    for scenario, ph in phases.items():
        print(f"  {scenario:<10} {show_phases(ph)}")
    out["phases"] = phases
    print(json.dumps(out))


if __name__ == "__main__":
    main()
