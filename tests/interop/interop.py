#!/usr/bin/env python3
"""Interop runner: real Exim and Postfix decide, sendercheck must agree.

    interop.py oracle exim|postfix ADDRESS...     ask one oracle by hand
    interop.py run --out DIR [--bin PATH | --oracle-only]

Needs a world built by up.sh (namespace $SC_NS, scratch folder named in
/run/sendercheck-interop/$SC_NS.world). Runs as root in the root namespace
and enters the world with `ip netns exec` for every call. Standard library only.

The two oracles:
  exim     `exim -C <oracle conf> -bhc 127.0.0.1` with
           `require verify = sender/callout=5s,no_cache`: a fake SMTP session
           whose sender callout is real. RCPT 250 = pass, 5xx = fail, 4xx = defer.
  postfix  a Postfix smtpd on 127.0.0.10 with reject_unverified_sender
           (probe sender double-bounce@oracle.test, 550 for undeliverable
           senders), asked with swaks. 250 = pass, 5xx = fail, 450 = defer.

Decisions use sendercheck's vocabulary: pass | fail | defer.
"""

import argparse
import concurrent.futures
import csv
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field, asdict

NS = os.environ.get("SC_NS", "scworld")
POINTER = f"/run/sendercheck-interop/{NS}.world"
EXIM = os.environ.get(
    "SC_EXIM_BIN", "/var/cache/sendercheck-interop/exim/usr/sbin/exim4")
GREY_DELAY = float(os.environ.get("SC_GREY_DELAY", "5"))
HERE = os.path.dirname(os.path.abspath(__file__))
CPANEL_DOMAIN = "cpanel.test"      # the cPanel-style Exim target (valiases)
ORACLE_RCPT = "check@oracle.test"


def world_dir():
    try:
        with open(POINTER) as f:
            return f.read().strip()
    except FileNotFoundError:
        sys.exit(f"no world for namespace {NS}: run tests/interop/up.sh first")


def in_ns(argv):
    return ["ip", "netns", "exec", NS] + argv


def safe(address):
    """The matrix is ours, but nothing with CR/LF/<> goes into an SMTP script."""
    if re.search(r"[\x00-\x20<>]", address):
        raise ValueError(f"unsafe address {address!r}")
    return address


# ------------------------------------------------------------------ oracles

@dataclass
class Answer:
    decision: str                 # pass | fail | defer | error
    code: str                     # the deciding reply's code, e.g. "550"
    reply: list = field(default_factory=list)   # the deciding reply's lines
    reason: str = ""              # Exim's log reason / Postfix's probe result
    at: float = 0.0               # when it was asked (time.time())

    def short(self):
        return f"{self.decision} {self.code}"


def decision_of(code):
    return {"2": "pass", "5": "fail", "4": "defer"}.get(code[:1], "error")


def smtp_replies(text):
    """Group raw reply lines into replies (continuation lines are 'NNN-')."""
    replies, cur = [], []
    for line in text.splitlines():
        if not re.match(r"^\d{3}[ -]", line):
            continue
        cur.append(line)
        if line[3] == " ":
            replies.append(cur)
            cur = []
    if cur:
        replies.append(cur)
    return replies


def ask_exim(address, world=None):
    """One fake SMTP session; the RCPT answer carries the callout's result."""
    world = world or world_dir()
    conf = os.path.join(world, "run/exim-oracle/exim.conf")
    # A UTF-8 sender is presented the lawful way, with SMTPUTF8 (RFC 6531).
    param = "" if address.isascii() else " SMTPUTF8"
    script = (f"EHLO client.test\r\nMAIL FROM:<{safe(address)}>{param}\r\n"
              f"RCPT TO:<{ORACLE_RCPT}>\r\nQUIT\r\n")
    at = time.time()
    p = subprocess.run(in_ns([EXIM, "-C", conf, "-bhc", "127.0.0.1"]),
                       input=script, capture_output=True, text=True, timeout=180)
    replies = smtp_replies(p.stdout)
    # greeting, EHLO, MAIL, RCPT, QUIT; a refused MAIL (e.g. 501) decides
    if len(replies) < 4:
        return Answer("error", "", replies[-1] if replies else [], p.stderr.strip()[-300:], at)
    mail, rcpt = replies[2], replies[3]
    deciding = rcpt if mail[-1].startswith("2") else mail
    code = deciding[-1][:3]
    m = re.search(r"sender verify (?:fail|defer) for <[^>]*>: (.*)", p.stderr)
    reason = m.group(1).strip() if m else ""
    return Answer(decision_of(code), code, deciding, reason, at)


def ask_postfix(address, world=None, tries=3):
    """swaks to the Postfix oracle; smtpd itself polls verify(8) for up to 15 s.
    A 450 'Address verification in progress' means the probe has not finished
    yet: ask again (bounded)."""
    for _ in range(tries):
        at = time.time()
        p = subprocess.run(
            in_ns(["swaks", "--server", "127.0.0.10", "--helo", "client.test",
                   "--from", safe(address), "--to", ORACLE_RCPT,
                   "--quit-after", "RCPT", "--timeout", "60"]),
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
        # server lines are '<-  ' (ok) or '<** ' (error) after each '-> ' command
        blocks, cmd = {}, None
        for line in out.splitlines():
            if line.startswith(" -> "):
                cmd = line[4:].split(":")[0].split(" ")[0].upper()
            elif line.startswith(("<-  ", "<** ")) and cmd:
                blocks.setdefault(cmd, []).append(line[4:])
        deciding = blocks.get("RCPT") or blocks.get("MAIL") or []
        if not deciding:
            return Answer("error", "", [], out.strip()[-300:], at)
        code = deciding[-1][:3]
        text = " ".join(deciding)
        m = re.search(r"(?:unverified|undeliverable) address: (.*)", text)
        reason = m.group(1) if m else ""
        if code.startswith("4") and "verification in progress" in text:
            time.sleep(1)
            continue
        return Answer(decision_of(code), code, deciding, reason, at)
    return Answer("defer", code, deciding, "verification still in progress", at)


ORACLES = {"exim": ask_exim, "postfix": ask_postfix}


# ------------------------------------------------------------------ matrix

def read_matrix(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    # line numbers as sendercheck counts them: the header is line 1
    return [{"line": i + 2, "email": r["email"], "case": r["case"]}
            for i, r in enumerate(rows)]


def read_expected(path):
    """address -> {exim: ..., postfix: ...}; 'defer>pass' = defers first,
    passes when asked again after the greylist delay."""
    exp = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            addr, ex, pf = line.rstrip("\n").split("\t")[:3]
            exp[addr] = {"exim": ex, "postfix": pf}
    return exp


def read_allow_list(path):
    allow = {}
    if os.path.exists(path):
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip() or line.startswith("#"):
                    continue
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3 or parts[1] not in ("exim", "postfix") or not parts[2].strip():
                    sys.exit(f"{path}:{n}: want 'address<TAB>exim|postfix<TAB>reason'")
                allow[(parts[0].lower(), parts[1])] = parts[2]
    return allow


def ask_all(addresses, world, jobs=6):
    """Both oracles for every address, in parallel. -> {(addr, oracle): Answer}"""
    out = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futs = {pool.submit(ORACLES[o], a, world): (a, o)
                for a in addresses for o in ORACLES}
        for fut in concurrent.futures.as_completed(futs):
            out[futs[fut]] = fut.result()
    return out


def oracle_rounds(rows, world):
    """Round 1 asks everything. Whatever deferred is asked again once the
    greylist delay has passed since its first question (round 2); the later
    answer is the oracle's final word (a greylisting receiver's retry)."""
    addrs = [r["email"] for r in rows]
    t0 = time.time()
    first = ask_all(addrs, world)
    log(f"oracle round 1: {len(first)} answers in {time.time() - t0:.1f}s")
    again = sorted({a for (a, o), ans in first.items() if ans.decision == "defer"})
    final = dict(first)
    if again:
        ready = max(first[(a, o)].at for a in again for o in ORACLES) + GREY_DELAY + 1.5
        wait = max(0.0, ready - time.time())
        log(f"oracle round 2: {len(again)} deferred senders, asked again in {wait:.1f}s")
        time.sleep(wait)
        t1 = time.time()
        second = ask_all(again, world)
        final.update(second)
        log(f"oracle round 2: done in {time.time() - t1:.1f}s")
    return first, final


def history(first, final, key):
    """'defer>pass' when the second question got another answer."""
    a, b = first[key].decision, final[key].decision
    return a if a == b else f"{a}>{b}"


# ------------------------------------------------------------------ output

def log(msg):
    print(f"[interop] {msg}", file=sys.stderr, flush=True)


def table(headers, rows):
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(str(c))) for w, c in zip(widths, r)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*(str(c) for c in r)).rstrip() for r in rows]
    return "\n".join(lines)


def clip(s, n=90):
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


# ------------------------------------------------------------------ sendercheck

def run_sendercheck(binary, matrix, out, grey_wait):
    cmd = in_ns([binary, "audit", matrix, "--allow-private-mx", "--format", "json",
                 "-o", out, "--probe-sender", "probe@oracle.test", "--helo", "client.test",
                 "--timeout", "5", "--greylist-wait", str(grey_wait), "--fail-on", "never"])
    log("$ " + " ".join(cmd))
    t0 = time.time()
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=240)
    log(f"sendercheck exit {p.returncode} in {time.time() - t0:.1f}s")
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-3000:])
        raise SystemExit(f"sendercheck failed (exit {p.returncode}) with --fail-on never")
    report = os.path.join(out, "report.json")
    with open(report) as f:
        return json.load(f)


def index_results(report, rows):
    """matrix row -> sendercheck result: by line number when that result is
    for the same address, else by address."""
    results = report.get("results", [])
    by_line = {r.get("line"): r for r in results}
    by_addr = {str(r.get("address", "")).lower(): r for r in results}
    out = {}
    for row in rows:
        res = by_line.get(row["line"])
        if res is None or str(res.get("address", "")).lower() != row["email"].lower():
            res = by_addr.get(row["email"].lower())
        out[row["email"]] = res
    return out


def deciding_reply(res):
    ev = (res or {}).get("evidence") or {}
    reply = ev.get("reply") or []
    if reply:
        return reply[-1] if len(reply) == 1 else " / ".join(reply)
    return (res or {}).get("reason", "")


# ------------------------------------------------------------------ fix proof

FIX_LINE = re.compile(r"^([^\s:@]+)@([^\s:@]+):\s+:blackhole:\s*$")


def fix_proof(world, fix_file, senders):
    """Install the valiases fix on the cPanel-style Exim target and ask the
    Exim oracle again: every sender must now pass; an unlisted address must
    still fail (the fix is not a catch-all)."""
    target = os.path.join(world, "valiases", CPANEL_DOMAIN)
    print(f"\n== fix proof: {fix_file} -> {target}")
    if not senders:
        print("no sender was unreceivable on the cPanel-style target: nothing to prove")
        return False
    if not os.path.exists(fix_file):
        print(f"FAIL: no fix file {fix_file}")
        return False
    ok = True
    with open(fix_file) as f:
        content = f.read()
    listed = set()
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = FIX_LINE.match(line)
        if not m or m.group(2).lower() != CPANEL_DOMAIN:
            print(f"FAIL: {fix_file}:{n}: not 'local@{CPANEL_DOMAIN}: :blackhole:': {line!r}")
            ok = False
            continue
        listed.add(f"{m.group(1)}@{m.group(2)}".lower())
    original = open(target).read()
    # Installed as an administrator would: a fixed address's old line (a
    # :fail: or :defer: alias) is replaced, every other alias is kept.
    kept = [line for line in original.splitlines(keepends=True)
            if line.split(":", 1)[0].strip().lower() not in listed]
    with open(target, "w") as f:
        f.writelines(kept)
        f.write(content if content.endswith("\n") else content + "\n")
    os.chmod(target, 0o644)
    try:
        probes = list(senders) + [f"not-listed-{os.getpid()}@{CPANEL_DOMAIN}"]
        answers = {a: ask_exim(a, world) for a in probes}
    finally:
        with open(target, "w") as f:
            f.write(original)
    rows = []
    for a in probes:
        want = "fail" if a.startswith("not-listed-") else "pass"
        ans = answers[a]
        good = ans.decision == want and (want == "fail" or a.lower() in listed)
        ok &= good
        rows.append([a, "yes" if a.lower() in listed else "no", want, ans.short(),
                     "ok" if good else "FAIL", clip(ans.reason or ans.reply[-1:], 60)])
    print(table(["sender", "in fix", "want", "exim oracle", "", "oracle reason"], rows))
    return ok


# ------------------------------------------------------------------ run

def cmd_run(args):
    world = world_dir()
    rows = read_matrix(args.matrix)
    expected = read_expected(args.expected)
    allow = read_allow_list(args.allow_list)
    os.makedirs(args.out, exist_ok=True)
    failures = []

    # 1. the oracles, and a check that the world behaves as designed
    first, final = oracle_rounds(rows, world)
    with open(os.path.join(args.out, "oracle.json"), "w") as f:
        json.dump({f"{a} {o}": {"first": asdict(first[(a, o)]), "final": asdict(final[(a, o)])}
                   for (a, o) in final}, f, indent=1)
    world_rows = []
    for r in rows:
        a = r["email"]
        exp = expected.get(a)
        if exp is None:
            failures.append(f"{a}: no line in {os.path.basename(args.expected)}")
        got = {o: history(first, final, (a, o)) for o in ORACLES}
        bad = [o for o in ORACLES if exp and exp[o] != got[o]]
        for o in bad:
            hint = " (postgrey remembers: use a fresh world, as run.sh does)" \
                if ">" in exp[o] and ">" not in got[o] else ""
            failures.append(f"world: {a}: {o} oracle said {got[o]}, expected {exp[o]}{hint}")
        world_rows.append([a, r["case"], got["exim"], got["postfix"],
                           "ok" if exp and not bad else "UNEXPECTED",
                           clip(final[(a, "exim")].reason or final[(a, "exim")].reply[-1:], 70)])
    print("\n== oracles (a>b: first answer, then the answer after the greylist delay)")
    print(table(["sender", "case", "exim oracle", "postfix oracle", "world", "exim says"],
                world_rows))

    # 2. sendercheck against the oracles
    fix_senders, fix_file = [], None
    if args.oracle_only:
        # prove the fix mechanism with a fix written here from the oracle's rejects
        for r in rows:
            a = r["email"]
            ans = final[(a, "exim")]
            if a.lower().endswith("@" + CPANEL_DOMAIN) and ans.decision == "fail" \
                    and "Unrouteable address" in ans.reason:
                fix_senders.append(a)
        fix_file = os.path.join(args.out, "fixes/valiases", CPANEL_DOMAIN)
        os.makedirs(os.path.dirname(fix_file), exist_ok=True)
        with open(fix_file, "w") as f:
            f.writelines(f"{a}: :blackhole:\n" for a in fix_senders)
    else:
        report = run_sendercheck(args.bin, args.matrix, args.out, int(GREY_DELAY) + 2)
        results = index_results(report, rows)
        cmp_rows, mismatches = [], []
        for r in rows:
            a = r["email"]
            res = results.get(a)
            if res is None:
                failures.append(f"{a}: not in sendercheck's report")
                continue
            cells, mark = [], ""
            for o in ORACLES:
                want, got = final[(a, o)].decision, res.get(o)
                if want == got:
                    continue
                reason = allow.get((a.lower(), o))
                if reason:
                    mark += f" {o}:allowed"
                else:
                    mark += f" {o}:DISAGREE"
                    failures.append(f"{a}: {o} oracle {history(first, final, (a, o))}, "
                                    f"sendercheck {o}={got}")
                    mismatches.append((a, o, res))
            extra_case = (res.get("extra") or {}).get("case")
            if extra_case != r["case"]:
                failures.append(f"{a}: extra.case is {extra_case!r}, want {r['case']!r}")
            cmp_rows.append([a, r["case"], history(first, final, (a, "exim")), res.get("exim"),
                             history(first, final, (a, "postfix")), res.get("postfix"),
                             res.get("verdict"), mark.strip() or "ok", clip(deciding_reply(res), 80)])
            if res.get("verdict") == "unreceivable" and a.lower().endswith("@" + CPANEL_DOMAIN):
                fix_senders.append(a)
        print("\n== agreement: oracles vs sendercheck")
        print(table(["sender", "case", "exim oracle", "sc exim", "postfix oracle", "sc postfix",
                     "verdict", "agree", "deciding reply"], cmp_rows))
        for a, o, res in mismatches:
            print(f"\n-- {a} ({o}) disagrees")
            print(f"   oracle:      {final[(a, o)].short()}: {final[(a, o)].reason or final[(a, o)].reply}")
            print(f"   sendercheck: verdict={res.get('verdict')} class={res.get('class')} "
                  f"reason={res.get('reason')!r}")
            print(f"   evidence:    {json.dumps(res.get('evidence'))}")
        fix_file = os.path.join(args.out, "fixes/valiases", CPANEL_DOMAIN)

    # 3. the fix, installed on the cPanel-style target, makes every such sender pass
    if not fix_proof(world, fix_file, fix_senders):
        failures.append("fix proof failed")

    print()
    if failures:
        print(f"INTEROP FAILED ({len(failures)}):")
        for f in failures:
            print(f"  - {f}")
        return 1
    if not args.oracle_only:
        stale = [k for k in allow if not any(k == (r["email"].lower(), o) and final[(r["email"], o)].decision
                                             != (results.get(r["email"]) or {}).get(o)
                                             for r in rows for o in ORACLES)]
        for a, o in stale:
            print(f"note: allow-list entry {a} {o} is not needed any more")
    mode = "oracle-only" if args.oracle_only else "oracles and sendercheck agree"
    print(f"INTEROP OK ({mode}; {len(rows)} senders)")
    return 0


def cmd_oracle(args):
    world = world_dir()
    rc = 0
    for a in args.address:
        ans = ORACLES[args.which](a, world)
        print(f"{a}: {ans.short()}")
        for line in ans.reply:
            print(f"  reply: {line}")
        if ans.reason:
            print(f"  reason: {ans.reason}")
        rc = max(rc, {"pass": 0, "fail": 1, "defer": 2}.get(ans.decision, 3))
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("oracle", help="ask an oracle by hand (exit 0 pass, 1 fail, 2 defer, 3 error)")
    o.add_argument("which", choices=sorted(ORACLES))
    o.add_argument("address", nargs="+")
    r = sub.add_parser("run", help="the matrix: oracles, sendercheck, comparison, fix proof")
    r.add_argument("--out", required=True, help="output folder (sendercheck's -o)")
    r.add_argument("--bin", default="target/release/sendercheck")
    r.add_argument("--oracle-only", action="store_true",
                   help="no sendercheck: print the oracle table and prove the fix mechanism")
    r.add_argument("--matrix", default=os.path.relpath(os.path.join(HERE, "matrix.csv")))
    r.add_argument("--expected", default=os.path.join(HERE, "oracle-expected.tsv"))
    r.add_argument("--allow-list", default=os.path.join(HERE, "allow-list.txt"))
    args = ap.parse_args()
    sys.exit(cmd_run(args) if args.cmd == "run" else cmd_oracle(args))


if __name__ == "__main__":
    main()
