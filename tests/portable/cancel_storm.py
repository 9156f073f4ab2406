#!/usr/bin/env python3
"""Usage: tests/portable/cancel_storm.py PG_CONFIG OWNER DATABASE [ITERATIONS]

Cancels landing inside month_lock calls of the SQL-only edition (docs/editions.md, "Cancels").
A victim psql session (as OWNER) runs a script of month_lock calls, each followed by a check of
the lock table, while a canceller session of the same role sends it pg_cancel_backend every
0.2..1.7 ms. For every cancelled call the error's CONTEXT tells whether it landed inside a
month_lock function (a "PL/pgSQL function month_lock..." line) or after the function had
returned, in the calling statement (the documented window of every edition without the native
failed-request undo).

  reentry  2031-01, held in session scope from the start, re-entered by month_lock_try (with and
           without timeout), month_lock, month_lock_token and month_lock_all: after every
           cancel, wherever it landed, the month is still held; at the end one release frees it
           (no stacked session reference)
  fresh    month_lock_try, month_lock, month_lock_try_shared, month_lock_all and
           month_lock_claim on free months (2031-02, 2031-03), each followed by
           month_lock_release_all(): a cancel inside the acquiring call leaves none held
  xact     month_lock_all on a month held in transaction scope only plus a month another
           session holds (false): after it, and after a cancel inside it, the month is not held
           in session scope (it is free once the transaction ends)
  release  eight months held, then month_lock_release_all(), month_lock_release(date[]) over
           the eight, or month_lock_release(year, month): a cancel inside the release function
           leaves all eight held or (the set releases) none, never some; a cancel inside the
           single release leaves its month held (at least 60 cancels inside releases)

Fails on any violation, and when fewer than 100 cancels of a phase landed inside month_lock
calls or fewer than two thirds of the checks answered (the storm did not exercise the windows).
Prints the counts.
"""
import os
import re
import subprocess
import sys
import threading

pg_config, owner, db = sys.argv[1:4]
default_iterations = int(sys.argv[4]) if len(sys.argv) > 4 else 600
bindir = subprocess.run([pg_config, '--bindir'], check=True, capture_output=True, text=True).stdout.strip()
psql = os.path.join(bindir, 'psql')
env = dict(os.environ, PGUSER=owner)
INSIDE = re.compile(r'PL/pgSQL function (\w+\.)?month_lock')
# a cancel inside a release (fresh: each acquisition is followed by month_lock_release_all())
RELEASE = re.compile(r'PL/pgSQL function (\w+\.)?month_lock(__release|_release|__unlock_list)')
RELEASE_MONTHS = "objid BETWEEN 203201 AND 203208"
# a statement of a handler before its give-back has run: its check of what the call holds now
# (month_lock__mine), the IF and LOOP opening month_lock_all's give-back (the call's own loop is
# a FOREACH), which a second cancel can end. An error that escapes month_lock__all from an IF or
# a LOOP is such a second cancel: a first one there is caught and re-raised after the give-back,
# keeping nothing.
HANDLER_CHECK = re.compile(r'PL/pgSQL function (\w+\.)?month_lock__mine\('
                           r'|PL/pgSQL function (\w+\.)?month_lock__all\([^)]*\) line \d+ at (LOOP|IF)$')
HELD = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
        "AND classid = 1835821824 AND objsubid = 2 AND objid = {ym} AND mode = '{mode}'")

PHASES = {
    'reentry': dict(
        setup="SELECT month_lock_try(2031, 1);\n",
        ops=[f"SELECT {call} FROM generate_series(1, 20)" for call in (
            "month_lock_try(2031, 1)", "month_lock_try(2031, 1, 5)", "month_lock(2031, 1)",
            "month_lock_token(2031, 1)", "month_lock_all(ARRAY['2031-01-01']::date[])",
            "month_lock_all(ARRAY['2031-01-01', '2031-01-20']::date[], 5)")],
        after='',
        check='(' + HELD.format(ym=203101, mode='ExclusiveLock') + ') = 1',
        teardown="SELECT 'END', month_lock_release(2031, 1) AND NOT month_lock_held(2031, 1) AS one_reference;\n"),
    'fresh': dict(
        setup='',
        ops=[f"SELECT {call}, month_lock_release_all() FROM generate_series(1, 20)" for call in (
            "month_lock_try(2031, 2)", "month_lock(2031, 2)", "month_lock_try_shared(2031, 2)",
            "month_lock_all(ARRAY['2031-02-01', '2031-03-01']::date[], 5)",
            "month_lock_claim(ARRAY['2031-02-01', '2031-03-01']::date[])", "month_lock_try(2031, 2, 5)")],
        after='',
        check="SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
              "AND classid = 1835821824 AND objsubid = 2 AND objid IN (203102, 203103)",
        cleanup="SELECT pg_advisory_unlock_all();\n",
        teardown=''),
    'xact': dict(
        setup='',
        ops=["BEGIN; SELECT month_lock_xact(2031, 4); SELECT month_lock_all(ARRAY['2031-04-01', '2031-05-01']::date[], 1)"],
        after="ROLLBACK;\n",
        check="SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
              "AND classid = 1835821824 AND objsubid = 2 AND objid IN (203104, 203105)",
        teardown=''),
    'release': dict(
        setup='',
        prelude="SELECT count(*) FILTER (WHERE month_lock_try(2032, m)) FROM generate_series(1, 8) m;\n",
        ops=["SELECT month_lock_release_all()",
             "SELECT month_lock_release(ARRAY(SELECT make_date(2032, m, 1) FROM generate_series(1, 8) m))",
             "SELECT month_lock_release(2032, 1)"],
        after='',
        check="SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted "
              "AND classid = 1835821824 AND objsubid = 2 AND " + RELEASE_MONTHS,
        cleanup="SELECT pg_advisory_unlock_all();\n",
        # a release is short beside the statements around it: more rounds, fewer cancels needed
        inside=RELEASE, iterations=2400, min_inside=60,
        teardown=''),
}


def run_phase(name, spec):
    blocker = None
    if name == 'xact':
        # another session holds 2031-05, so month_lock_all returns false (or is cancelled)
        blocker = subprocess.Popen([psql, '-X', '-q', '-d', db, '-c', 'SELECT month_lock_try(2031, 5)',
                                    '-c', 'SELECT pg_sleep(3600)'], env=dict(env, PGAPPNAME='ml_storm_blocker'),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_sql = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 203105 AND granted")
        for _ in range(200):
            if subprocess.run([psql, '-X', '-At', '-d', db, '-c', wait_sql], env=env, capture_output=True,
                              text=True).stdout.strip() == '1':
                break
            threading.Event().wait(0.05)
        else:
            sys.exit('cancel-storm: the blocking session did not take 2031-05')
    # The setup runs before the storm: the canceller starts once the victim holds the go key.
    script = ['\\set VERBOSITY default', spec['setup'], 'SELECT pg_advisory_lock(0, 4243);\n']
    iterations = spec.get('iterations', default_iterations)
    for i in range(iterations):
        op = spec['ops'][i % len(spec['ops'])]
        # the state before the call: a normalising statement can be cancelled too
        script.append(f'{spec.get("prelude", "")}\\set pre unknown\nSELECT ({spec["check"]}) AS pre \\gset\n'
                      f'\\warn OP {i} :pre\n{op};\n\\warn DONE {i}\n{spec["after"]}')
        script.append(f'\\set ok unknown\nSELECT ({spec["check"]}) AS ok \\gset\n\\warn RES {i} :ok\n'
                      f'{spec.get("cleanup", "")}')
    # Stop the canceller (it watches for this key) and let a cancel still on its way land
    # harmlessly before the teardown.
    script.append("SELECT pg_advisory_lock(0, 4242);\n" * 3 + "SELECT pg_sleep(0.02);\n" * 3)
    script.append(spec['teardown'])
    stop = threading.Event()
    canceller = subprocess.Popen([psql, '-X', '-q', '-d', db, '-c', """
SET client_min_messages = error;
DO $$
DECLARE victim integer; t0 timestamptz := clock_timestamp();
BEGIN
  LOOP
    SELECT pid INTO victim FROM pg_locks
     WHERE locktype = 'advisory' AND classid = 0 AND objid = 4243 AND objsubid = 2 AND granted;
    EXIT WHEN victim IS NOT NULL OR clock_timestamp() > t0 + interval '60 s';
    PERFORM pg_sleep(0.005);
  END LOOP;
  -- until the victim takes the stop key (or its backend is gone: pg_cancel_backend is false)
  WHILE victim IS NOT NULL AND clock_timestamp() < t0 + interval '600 s'
        AND NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = 4242
                                               AND objsubid = 2 AND granted)
        AND pg_cancel_backend(victim) LOOP
    PERFORM pg_sleep(0.0002 + random() * 0.0015);
  END LOOP;
END $$"""], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim = subprocess.run([psql, '-X', '-q', '-At', '-d', db], input='\n'.join(script),
                            env=dict(env, PGAPPNAME='ml_storm_victim'), capture_output=True, text=True)
    canceller.wait(timeout=120)
    stop.set()
    if blocker:
        subprocess.run([psql, '-X', '-q', '-d', db, '-c', "SELECT pg_cancel_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'ml_storm_blocker'"], env=env, capture_output=True)
        blocker.wait(timeout=60)
    lines = victim.stderr.splitlines()
    inside = outside = landed = bad = checked = window2 = 0
    i = 0
    cur = None
    state = None  # None, 'op', 'after'
    ctx = []
    cancelled = False
    problems = []
    while i < len(lines):
        line = lines[i]
        m = re.match(r'^(OP|DONE|RES) (\d+) ?(.*)$', line)
        if m:
            kind, n, rest = m.group(1), int(m.group(2)), m.group(3)
            if kind == 'OP':
                cur, state, ctx, cancelled, pre = n, 'op', [], False, rest.strip()
            elif kind == 'DONE':
                if cancelled:
                    landed += 1
                    if 'inside' in spec and any(spec['inside'].search(c) for c in ctx):
                        inside += 1
                        where = 'inside'
                    elif any(RELEASE.search(c) for c in ctx):
                        outside += 1
                        where = 'release'
                    elif any(INSIDE.search(c) for c in ctx):
                        inside += 1
                        where = 'inside'
                    else:
                        outside += 1
                        where = 'after'
                    cancelled = where
                state = 'after'
            elif kind == 'RES' and n == cur:
                ok = rest.strip()
                checked += ok in ('t', 'f') or ok.isdigit()
                # reentry: never lose the hold (anywhere); fresh/xact: nothing held after a cancel
                # inside the acquiring call, and (xact) nothing held in session scope after a
                # normal false either
                violation = False
                if name == 'reentry' and ok == 'f':
                    violation = True
                elif name == 'fresh' and cancelled == 'inside' and ok == 'f' and pre == 't':
                    violation = True
                elif name == 'xact' and ok == 'f' and pre == 't':
                    violation = True
                elif name == 'release' and cancelled == 'inside' and pre == '8' and ok.isdigit() and ok not in (
                        ('8',) if n % len(spec['ops']) == 2 else ('8', '0')):
                    violation = True
                # window (2) of docs/editions.md, Cancels: a second cancel processed by a
                # handler's check of what it holds, before its give-back started
                if violation and name in ('fresh', 'xact') and any(HANDLER_CHECK.search(c) for c in ctx):
                    violation = False
                    window2 += 1
                    problems.append(f'documented window (2), not a violation: iteration {n}, '
                                    f'context: {" | ".join(ctx)}')
                if violation:
                    bad += 1
                    problems.append(f'iteration {n} ({spec["ops"][n % len(spec["ops"])]}), cancel: {cancelled}, '
                                    f'before: {pre}, after: {ok}, '
                                    f'context: {" | ".join(ctx)}')
            i += 1
            continue
        if state == 'op' and line.startswith('ERROR:') and 'canceling statement due to user request' in line:
            cancelled = True
            i += 1
            # psql prints the CONTEXT's lines unindented: everything up to the next marker
            while i < len(lines) and not re.match(r'^(OP|DONE|RES) \d+|^ERROR:', lines[i]):
                ctx.append(lines[i].strip())
                i += 1
            continue
        i += 1
    end_ok = True
    if name == 'reentry':
        end_ok = bool(re.search(r'^END\|t$', victim.stdout, re.M))
        if not end_ok:
            problems.append('at the end one release did not free the month (stacked or lost): '
                            + victim.stdout[-200:])
    print(f'cancel-storm {name}: {iterations} statements, {landed} cancels landed in them, {inside} inside '
          f'acquiring month_lock functions, {outside} elsewhere (after a call returned, or in a release), '
          f'{checked} checks, {bad} violations, {window2} in documented window (2)')
    for p in problems[:10]:
        print(f'  {p}' if p.startswith('documented') else f'  violation: {p}')
    # a check is itself cancelled now and then (its answer is then unknown): most must answer
    min_inside = spec.get('min_inside', 100)
    enough = inside >= min_inside and checked >= iterations * 2 // 3
    if not enough:
        print(f'  too few cancels inside calls (wanted {min_inside}) or checks answered (wanted {iterations * 2 // 3})')
    return bad == 0 and end_ok and enough


ok = True
for name in sys.argv[5:] or PHASES:
    ok = run_phase(name, PHASES[name]) and ok
if not ok:
    print('cancel-storm: FAILED (violations, or fewer than 100 cancels inside month_lock calls)')
    sys.exit(1)
