#!/usr/bin/env bash
# Build the interop mail world from nothing (Debian 12, as root).
#
#   bash tests/interop/up.sh [SCRATCH_DIR]
#
# Installs what is missing (Postfix, unbound, postgrey, swaks, dig via apt;
# Exim 4.96 unpacked from its .deb beside Postfix), then starts, inside the
# network namespace $SC_NS (loopback only):
#
#   127.0.0.53:53    unbound, zone test.   (resolver of the namespace)
#   127.0.0.1:10023  postgrey               (policy service of mx.grey.test)
#   127.0.0.10:25    Postfix oracle         (reject_unverified_sender)
#   127.0.0.11-17    Postfix targets        (one master, seven listeners)
#   127.0.0.21-23    Exim targets           (plain, cPanel-style, refuses <>)
#   127.0.0.67:25    tarpit                 (listens, never greets)
#   127.0.0.66, .68  nothing                (connection refused)
# and writes the Exim oracle's config (used with `exim -bhc`, no daemon).
#
# Idempotent: a world already up under the same namespace is torn down first.
set -euo pipefail
. "$(dirname "$0")/common.sh"

[ "$(id -u)" = 0 ] || die "must run as root (network namespaces)"

if ip netns list | grep -qw "^$SC_NS" || [ -f "$SC_POINTER" ]; then
    log "world $SC_NS exists: tearing it down first"
    bash "$HERE/down.sh"
fi

# ---------------------------------------------------------------- packages
# apt-get update once per boot (the marker lives in /run)
apt_update() {
    [ -f "$SC_STATE_DIR/apt-updated" ] && return
    apt-get update -q >&2
    touch "$SC_STATE_DIR/apt-updated"
}
install_packages() {
    local need=()
    command -v postfix >/dev/null || need+=(postfix)
    command -v unbound >/dev/null || need+=(unbound)
    command -v postgrey >/dev/null || need+=(postgrey)
    command -v swaks >/dev/null || need+=(swaks)
    command -v dig >/dev/null || need+=(bind9-dnsutils)
    command -v ip >/dev/null || need+=(iproute2)
    command -v python3 >/dev/null || need+=(python3)
    command -v ss >/dev/null || need+=(iproute2)
    local deb lib
    mkdir -p "$SC_EXIM_CACHE/pkg"
    deb=$(ls "$SC_EXIM_CACHE"/pkg/exim4-daemon-light_*.deb 2>/dev/null | head -1 || true)
    if [ -z "$deb" ]; then
        apt_update
        (cd "$SC_EXIM_CACHE/pkg" && apt-get download -q -o APT::Sandbox::User=root exim4-daemon-light >&2)
        deb=$(ls "$SC_EXIM_CACHE"/pkg/exim4-daemon-light_*.deb | head -1)
        rm -rf "$SC_EXIM_CACHE/exim"
    fi
    if [ ! -x "$SC_EXIM_BIN" ]; then
        rm -rf "$SC_EXIM_CACHE/exim.tmp"
        dpkg -x "$deb" "$SC_EXIM_CACHE/exim.tmp"
        mv "$SC_EXIM_CACHE/exim.tmp" "$SC_EXIM_CACHE/exim"
    fi
    # its shared libraries (not exim4-base/exim4-config: they conflict with postfix)
    for lib in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//; s/[ (].*//' | grep '^lib'); do
        dpkg -s "$lib" 2>/dev/null | grep -q '^Status: install ok installed' || need+=("$lib")
    done
    if [ ${#need[@]} -gt 0 ]; then
        log "apt-get install ${need[*]}"
        # maintainer scripts must not start daemons in the root namespace
        local guard=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            guard=1
        fi
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        apt_update
        local rc=0
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >&2 || rc=$?
        [ -z "$guard" ] || rm -f /usr/sbin/policy-rc.d
        [ $rc = 0 ] || die "apt-get install failed"
    fi
    # Exim looks up this user by its compiled-in name, even for -bV
    id Debian-exim >/dev/null 2>&1 ||
        useradd --system --user-group --home-dir /nonexistent --no-create-home \
                --shell /usr/sbin/nologin Debian-exim
    "$SC_EXIM_BIN" -C /dev/null -bV >/dev/null || die "unpacked exim does not run"
}
mkdir -p "$SC_STATE_DIR"
install_packages

# ---------------------------------------------------------------- scratch + namespace
WORLD=${1:-$(mktemp -d /tmp/scworld.XXXXXX)}
mkdir -p "$WORLD"
WORLD=$(cd "$WORLD" && pwd)
chmod 755 "$WORLD"               # postgrey and Debian-exim must reach their dirs
echo "$WORLD" > "$SC_POINTER"
mkdir -p "$WORLD"/{run,log,valiases}
log "world $SC_NS in $WORLD"

# iproute2 bind-mounts /run/netns onto itself on first use: remember whether
# that mount is ours, so down.sh can leave no mount behind
mountpoint -q /run/netns || touch "$SC_STATE_DIR/$SC_NS.netns-mount"
ip netns add "$SC_NS"
ip -n "$SC_NS" link set lo up
mkdir -p "/etc/netns/$SC_NS"
printf 'nameserver 127.0.0.53\noptions timeout:2 attempts:1\n' > "/etc/netns/$SC_NS/resolv.conf"

# ---------------------------------------------------------------- DNS
U=$WORLD/run/unbound
mkdir -p "$U"
cat > "$U/unbound.conf" <<EOF
server:
    interface: 127.0.0.53
    port: 53
    do-ip6: no
    do-daemonize: yes
    pidfile: "$U/unbound.pid"
    username: ""
    chroot: ""
    directory: "$U"
    logfile: "$U/unbound.log"
    use-syslog: no
    verbosity: 1
    module-config: "iterator"
    access-control: 127.0.0.0/8 allow
    # unbound's own upstream queries leave from 127.0.0.55 and are refused by
    # itself: servfail.test (forwarded to ourselves) gives SERVFAIL at once
    outgoing-interface: 127.0.0.55
    access-control: 127.0.0.55/32 refuse
    do-not-query-localhost: no
    # nothing outside test. exists here: REFUSED at once
    local-zone: "." refuse
    local-zone: "test." static
    local-data: "test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300"

    # --- Postfix targets
    local-data: "valid.test. 300 IN MX 10 mx.valid.test."
    local-data: "mx.valid.test. 300 IN A 127.0.0.11"
    # alice only, no postmaster (RFC 5321 4.5.1 violation)
    local-data: "nopm.test. 300 IN MX 10 mx.valid.test."
    # MX is mx.valid.test, which does not accept mail for relaydeny.test
    local-data: "relaydeny.test. 300 IN MX 10 mx.valid.test."
    local-data: "nullreject.test. 300 IN MX 10 mx.nullreject.test."
    local-data: "mx.nullreject.test. 300 IN A 127.0.0.12"
    local-data: "nullrcpt.test. 300 IN MX 10 mx.nullrcpt.test."
    local-data: "mx.nullrcpt.test. 300 IN A 127.0.0.13"
    local-data: "catchall.test. 300 IN MX 10 mx.catchall.test."
    local-data: "mx.catchall.test. 300 IN A 127.0.0.14"
    local-data: "grey.test. 300 IN MX 10 mx.grey.test."
    local-data: "mx.grey.test. 300 IN A 127.0.0.15"
    local-data: "tempfail.test. 300 IN MX 10 mx.tempfail.test."
    local-data: "mx.tempfail.test. 300 IN A 127.0.0.16"
    local-data: "blocked.test. 300 IN MX 10 mx.blocked.test."
    local-data: "mx.blocked.test. 300 IN A 127.0.0.17"

    # --- Exim targets
    local-data: "exim.test. 300 IN MX 10 mx.exim.test."
    local-data: "mx.exim.test. 300 IN A 127.0.0.21"
    local-data: "cpanel.test. 300 IN MX 10 mx.cpanel.test."
    local-data: "mx.cpanel.test. 300 IN A 127.0.0.22"
    local-data: "eximnull.test. 300 IN MX 10 mx.eximnull.test."
    local-data: "mx.eximnull.test. 300 IN A 127.0.0.23"

    # --- DNS-only cases
    # RFC 7505 null MX; its A record must NOT be used as implicit MX
    local-data: "nullmx.test. 300 IN MX 0 ."
    local-data: "nullmx.test. 300 IN A 127.0.0.11"
    # null MX beside a real MX (RFC 7505 3 forbids it): Exim uses the real one
    local-data: "mixednullmx.test. 300 IN MX 0 ."
    local-data: "mixednullmx.test. 300 IN MX 10 mx.valid.test."
    # no MX, an A record: implicit MX (RFC 5321 5.1)
    local-data: "implicit.test. 300 IN A 127.0.0.11"
    # the name exists with neither MX nor A (NOERROR, no data)
    local-data: "nodata.test. 300 IN TXT \"no mail here\""
    # MX target that does not resolve (NXDOMAIN)
    local-data: "badmx.test. 300 IN MX 10 mx.nowhere.test."
    # dead primary (connection refused), live secondary
    local-data: "twomx.test. 300 IN MX 10 mx1.twomx.test."
    local-data: "twomx.test. 300 IN MX 20 mx2.twomx.test."
    local-data: "mx1.twomx.test. 300 IN A 127.0.0.66"
    local-data: "mx2.twomx.test. 300 IN A 127.0.0.11"
    # the only MX is dead
    local-data: "dead.test. 300 IN MX 10 mx.dead.test."
    local-data: "mx.dead.test. 300 IN A 127.0.0.66"
    # every MX is dead
    local-data: "alldead.test. 300 IN MX 10 mx1.alldead.test."
    local-data: "alldead.test. 300 IN MX 20 mx2.alldead.test."
    local-data: "mx1.alldead.test. 300 IN A 127.0.0.66"
    local-data: "mx2.alldead.test. 300 IN A 127.0.0.68"
    # TCP connects, no banner ever comes
    local-data: "tarpit.test. 300 IN MX 10 mx.tarpit.test."
    local-data: "mx.tarpit.test. 300 IN A 127.0.0.67"

    # --- the oracles' own domain (probe sender probe@oracle.test)
    local-data: "oracle.test. 300 IN MX 10 mx.oracle.test."
    local-data: "mx.oracle.test. 300 IN A 127.0.0.10"

    # SERVFAIL at once
    local-zone: "servfail.test." transparent
forward-zone:
    name: "servfail.test."
    forward-addr: 127.0.0.53
EOF
unbound-checkconf "$U/unbound.conf" >/dev/null
nsx unbound -c "$U/unbound.conf"

# ---------------------------------------------------------------- postgrey
G=$WORLD/run/postgrey
mkdir -p "$G"
chown postgrey:postgrey "$G"
# --lookup-by-host: the triplet holds the full client IP, so sendercheck
# (127.0.0.1), the Exim oracle (127.0.0.2) and the Postfix oracle (127.0.0.3)
# are greylisted independently. --auto-whitelist-clients=0: never whitelist.
nsx postgrey --inet=127.0.0.1:10023 --dbdir="$G" --delay="$SC_GREY_DELAY" \
    --lookup-by-host --auto-whitelist-clients=0 --pidfile="$G/postgrey.pid" \
    --daemonize --user=postgrey --group=postgrey \
    --greylist-text="Greylisted, try again in %s seconds"

# ---------------------------------------------------------------- Postfix
# Common to both instances. Postfix logs through its own postlogd to
# maillog_file (no syslog here); no chroot anywhere.
postfix_base() { # DIR MYHOSTNAME MYDOMAIN
    cat <<EOF
compatibility_level = 3.6
myhostname = $2
mydomain = $3
myorigin = \$mydomain
mydestination =
# trust nobody: no client may relay
mynetworks = 127.0.0.254/32
# only 127.0.0.1 is an interface address: listeners name their own address
inet_interfaces = all
inet_protocols = ipv4
queue_directory = $1/spool
data_directory = $1/data
maillog_file = $1/maillog
maillog_file_prefixes = $WORLD
smtputf8_enable = no
biff = no
smtpd_banner = \$myhostname ESMTP Postfix
EOF
}
postfix_services() {
    cat <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

P=$WORLD/run/postfix
mkdir -p "$P"/{conf,spool,data}
chown postfix:postfix "$P/data"
{
    postfix_base "$P" mx.valid.test valid.test
    cat <<'EOF'
virtual_mailbox_domains = valid.test, nopm.test, implicit.test, twomx.test, nullmx.test, mixednullmx.test, nullreject.test, nullrcpt.test, tempfail.test, blocked.test
virtual_mailbox_maps = inline:{ alice@valid.test=ok, bob@valid.test=ok, news@valid.test=ok, postmaster@valid.test=ok, alice@nopm.test=ok, alice@implicit.test=ok, postmaster@implicit.test=ok, alice@twomx.test=ok, postmaster@twomx.test=ok, alice@nullmx.test=ok, alice@mixednullmx.test=ok, postmaster@mixednullmx.test=ok, alice@nullreject.test=ok, postmaster@nullreject.test=ok, alice@nullrcpt.test=ok, postmaster@nullrcpt.test=ok, alice@tempfail.test=ok, alice@blocked.test=ok }
# catch-all domains: every local part exists
virtual_alias_domains = catchall.test, grey.test
virtual_alias_maps = inline:{ @catchall.test=alice@valid.test, @grey.test=alice@valid.test }
# nothing is ever delivered
virtual_transport = discard:
default_transport = discard:
# unknown local parts: 550 5.1.1 at RCPT; other domains: 554 5.7.1 Relay access denied
smtpd_reject_unlisted_recipient = yes
unknown_virtual_mailbox_reject_code = 550
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
# named restriction sets, used by the listeners in master.cf
null_sender_restrictions = check_sender_access inline:{ { <> = 550 5.7.1 Null sender not accepted here } }
grey_recipient_restrictions = check_policy_service inet:127.0.0.1:10023
tempfail_recipient_restrictions = check_recipient_access inline:{ { tempfail.test = 451 4.3.2 Please try again later } }
EOF
} > "$P/conf/main.cf"
{
    cat <<'EOF'
# service       type  private unpriv  chroot  wakeup  maxproc command + args
# mx.valid.test (also nopm, implicit, twomx, mixednullmx, relaydeny): known local parts only
127.0.0.11:25   inet  n       -       n       -       -       smtpd
# mx.nullreject.test: MAIL FROM:<> refused with 550 at MAIL
127.0.0.12:25   inet  n       -       n       -       -       smtpd -o myhostname=mx.nullreject.test -o smtpd_delay_reject=no -o smtpd_sender_restrictions=$null_sender_restrictions
# mx.nullrcpt.test: MAIL FROM:<> refused, but (Postfix's default delay) at RCPT
127.0.0.13:25   inet  n       -       n       -       -       smtpd -o myhostname=mx.nullrcpt.test -o smtpd_sender_restrictions=$null_sender_restrictions
# mx.catchall.test: every local part accepted
127.0.0.14:25   inet  n       -       n       -       -       smtpd -o myhostname=mx.catchall.test
# mx.grey.test: postgrey; 450 until the triplet is SC_GREY_DELAY seconds old
127.0.0.15:25   inet  n       -       n       -       -       smtpd -o myhostname=mx.grey.test -o smtpd_recipient_restrictions=$grey_recipient_restrictions
# mx.tempfail.test: 451 at RCPT, always
127.0.0.16:25   inet  n       -       n       -       -       smtpd -o myhostname=mx.tempfail.test -o smtpd_recipient_restrictions=$tempfail_recipient_restrictions
# mx.blocked.test: 554 instead of the 220 greeting
127.0.0.17:25   inet  n       -       n       -       -       smtpd -o myhostname=mx.blocked.test -o smtpd_delay_reject=no -o smtpd_client_restrictions=reject
EOF
    postfix_services
} > "$P/conf/master.cf"

# The Postfix oracle: stock reject_unverified_sender (probe sender
# double-bounce@oracle.test), 550 for undeliverable senders, no lasting
# negative cache (every failed result is re-probed on the next query), and
# short smtp client timeouts so the tarpit costs seconds, not minutes.
PO=$WORLD/run/postfix-oracle
mkdir -p "$PO"/{conf,spool,data}
chown postfix:postfix "$PO/data"
{
    postfix_base "$PO" mx.oracle.test oracle.test
    cat <<'EOF'
virtual_mailbox_domains = oracle.test
virtual_mailbox_maps = inline:{ check@oracle.test=ok, probe@oracle.test=ok, postmaster@oracle.test=ok, double-bounce@oracle.test=ok }
virtual_transport = discard:
smtpd_reject_unlisted_recipient = yes
unknown_virtual_mailbox_reject_code = 550
smtpd_relay_restrictions = reject_unauth_destination
smtpd_sender_restrictions = reject_unverified_sender
unverified_sender_reject_code = 550
# smtpd waits up to 15 x 1 s for the probe's result before answering
address_verify_poll_count = 15
address_verify_poll_delay = 1s
# in-memory verify cache; failed results expire at once (re-probed next time)
address_verify_map =
address_verify_negative_expire_time = 1s
address_verify_negative_refresh_time = 1s
# probes leave from 127.0.0.3 (own greylist triplet)
smtp_bind_address = 127.0.0.3
smtp_connect_timeout = 5s
smtp_helo_timeout = 5s
smtp_mail_timeout = 5s
smtp_rcpt_timeout = 5s
EOF
} > "$PO/conf/main.cf"
{
    echo '# mx.oracle.test: RCPT TO:<check@oracle.test> answers with the sender verification result'
    echo '127.0.0.10:25   inet  n       -       n       -       -       smtpd'
    postfix_services
} > "$PO/conf/master.cf"

for inst in "$P" "$PO"; do
    if ! postfix -c "$inst/conf" check >/dev/null 2>&1; then
        # postfix only explains itself on a tty
        script -qc "postfix -c $inst/conf check" /dev/null >&2 || true
        die "postfix check failed for $inst"
    fi
    nsx postfix -c "$inst/conf" start >/dev/null 2>&1 ||
        { script -qc "ip netns exec $SC_NS postfix -c $inst/conf start" /dev/null >&2 || true; die "postfix start failed: $inst"; }
done

# ---------------------------------------------------------------- Exim
exim_base() { # DIR HOSTNAME IP
    cat <<EOF
primary_hostname = $2
local_interfaces = $3
daemon_smtp_ports = 25
exim_path = $SC_EXIM_BIN
spool_directory = $1/spool
log_file_path = $1/spool/log/%slog
pid_file_path = $1/exim.pid
keep_environment =
# nothing is ever delivered: the world only speaks SMTP up to RCPT
queue_only = true
tls_advertise_hosts =
host_lookup =
rfc1413_query_timeout = 0s
EOF
}
exim_dir() { mkdir -p "$1/spool/log"; chown -R Debian-exim:Debian-exim "$1/spool"; }

# mx.exim.test: alice and postmaster; others "550 Unrouteable address"
E1=$WORLD/run/exim-target
exim_dir "$E1"
{
    exim_base "$E1" mx.exim.test 127.0.0.21
    cat <<'EOF'
domainlist local_domains = exim.test
acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_rcpt:
  deny    domains = !+local_domains
          message = relay not permitted
  require verify = recipient
  accept

begin routers
known_users:
  driver = redirect
  domains = +local_domains
  local_parts = alice : postmaster
  data = :blackhole:
EOF
} > "$E1/exim.conf"

# mx.cpanel.test: like a cPanel host, a redirect router first looks the
# address up in the domain's valiases file (lsearch, $WORLD/valiases/<domain>
# like /etc/valiases/<domain>); then the real users; others are unrouteable.
# dsearch de-taints the domain before it becomes part of a file name.
E2=$WORLD/run/exim-cpanel
exim_dir "$E2"
{
    printf '# valiases for cpanel.test (cPanel format: local@domain: target)\n'
    # cPanel "Fail" and a mailbox being moved: Exim's :fail: and :defer:.
    printf 'gone@cpanel.test: :fail: No such person at this address\n'
    printf 'moving@cpanel.test: :defer: Mailbox is being moved, try later\n'
    printf 'j\303\266rg@cpanel.test: :blackhole:\n'
} > "$WORLD/valiases/cpanel.test"
{
    exim_base "$E2" mx.cpanel.test 127.0.0.22
    cat <<EOF
domainlist local_domains = cpanel.test
acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_rcpt:
  deny    domains = !+local_domains
          message = relay not permitted
  require verify = recipient
  accept

begin routers
virtual_aliases:
  driver = redirect
  domains = dsearch;$WORLD/valiases
  allow_fail
  allow_defer
  data = \${lookup{\$local_part@\$domain}lsearch{$WORLD/valiases/\${lookup{\$domain}dsearch{$WORLD/valiases}}}}
known_users:
  driver = redirect
  domains = +local_domains
  local_parts = alice : postmaster
  data = :blackhole:
EOF
} > "$E2/exim.conf"

# mx.eximnull.test: Exim refusing MAIL FROM:<> (alice, postmaster exist)
E3=$WORLD/run/exim-nullreject
exim_dir "$E3"
{
    exim_base "$E3" mx.eximnull.test 127.0.0.23
    cat <<'EOF'
domainlist local_domains = eximnull.test
acl_smtp_mail = acl_check_mail
acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_mail:
  deny    senders = :
          message = Null sender not accepted here
  accept
acl_check_rcpt:
  deny    domains = !+local_domains
          message = relay not permitted
  require verify = recipient
  accept

begin routers
known_users:
  driver = redirect
  domains = +local_domains
  local_parts = alice : postmaster
  data = :blackhole:
EOF
} > "$E3/exim.conf"

# The Exim oracle: no daemon, driven by `exim -C exim.conf -bhc 127.0.0.1`.
# RCPT TO:<check@oracle.test> is accepted only if the envelope sender passes
# a stock-style sender callout (short timeout, no cache).
EO=$WORLD/run/exim-oracle
exim_dir "$EO"
{
    exim_base "$EO" mx.oracle.test 127.0.0.9
    cat <<'EOF'
# the Called:/Sent:/Response: lines in a failed callout's reply
smtp_return_error_details = true
domainlist local_domains = oracle.test
acl_smtp_rcpt = acl_check_rcpt

begin acl
acl_check_rcpt:
  deny    domains = !+local_domains
          message = relay not permitted
  # the callout: MX lookup, connect, EHLO, MAIL FROM:<>, RCPT TO:<sender>
  require verify = sender/callout=5s,no_cache
  accept

begin routers
# DNS through the namespace's /etc/resolv.conf; no ignore_target_hosts,
# so MX hosts on 127.0.0.0/8 are used (Debian's template would drop them)
dnslookup:
  driver = dnslookup
  domains = ! +local_domains
  transport = remote_smtp
  no_more
local:
  driver = redirect
  domains = +local_domains
  data = :blackhole:

begin transports
remote_smtp:
  driver = smtp
  # callouts leave from 127.0.0.2 (own greylist triplet)
  interface = 127.0.0.2
EOF
} > "$EO/exim.conf"

chmod 644 "$E1/exim.conf" "$E2/exim.conf" "$E3/exim.conf" "$EO/exim.conf" "$WORLD/valiases/cpanel.test"
for e in "$E1" "$E2" "$E3"; do
    nsx "$SC_EXIM_BIN" -C "$e/exim.conf" -bd
done

# ---------------------------------------------------------------- tarpit
T=$WORLD/run/tarpit
mkdir -p "$T"
# listens, never accepts: the kernel completes the handshake, no banner comes
ip netns exec "$SC_NS" python3 -c '
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.67", 25))
s.listen(64)
while True:
    time.sleep(3600)
' </dev/null >>"$T/tarpit.log" 2>&1 &
echo $! > "$T/tarpit.pid"

# ---------------------------------------------------------------- readiness
want="127.0.0.53:53 127.0.0.1:10023 127.0.0.10:25 127.0.0.11:25 127.0.0.12:25
127.0.0.13:25 127.0.0.14:25 127.0.0.15:25 127.0.0.16:25 127.0.0.17:25
127.0.0.21:25 127.0.0.22:25 127.0.0.23:25 127.0.0.67:25"
for _ in $(seq 1 100); do
    listening=$(nsx ss -Hltn | awk '{print $4}')
    missing=
    for w in $want; do
        grep -qx "$w" <<<"$listening" || missing="$missing $w"
    done
    [ -z "$missing" ] && break
    sleep 0.1
done
[ -z "$missing" ] || die "not listening after 10 s:$missing"
[ "$(nsx dig +short valid.test MX)" = "10 mx.valid.test." ] || die "unbound does not answer"
log "world $SC_NS is up ($WORLD)"
