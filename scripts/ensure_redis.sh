#!/usr/bin/env bash
# Prints a REDIS_URL that answers PING.
#  1. $REDIS_URL if it is set and answers;
#  2. the machine's Redis on 127.0.0.1:6379 if it answers;
#  3. otherwise starts redis-server (Debian package `redis-server`) on a free loopback port,
#     with nothing on disk, and prints its URL. Its pid file is .tools/redis-<port>.pid.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

answers() { # host port [user] [password] (from a URL; the password goes by the environment, never the command line)
  if command -v redis-cli >/dev/null; then
    local user=()
    [ -n "${3:-}" ] && user=(--user "$3")
    [ "$(REDISCLI_AUTH="${4:-}" redis-cli -h "$1" -p "$2" "${user[@]}" ping 2>/dev/null)" = "PONG" ]
    return
  fi
  # no redis-cli: speak RESP by hand (a Redis that wants the URL's password answers too: NOAUTH)
  { exec 3<>"/dev/tcp/$1/$2"; } 2>/dev/null || return 1
  printf 'PING\r\n' >&3; local reply=""; read -r -t 2 reply <&3 || true; exec 3>&-
  [[ "$reply" == "+PONG"* || ( -n "${4:-}" && "$reply" == "-NOAUTH"* ) ]]
}

install_redis_server() {
  command -v redis-server >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "ensure_redis: installing Debian's redis-server..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } >&2 || true
  fi
  command -v redis-server >/dev/null
}
# The outage tests start private redis-servers, so the binary is needed even when a Redis answers.
install_redis_server || [ -n "${PVA_NO_REDIS_INSTALL:-}" ] || echo "ensure_redis: redis-server is not installed and could not be (apt-get install redis-server)" >&2

if [ -n "${REDIS_URL:-}" ]; then
  # redis[s]://[user][:password]@host[:port][/db]; the port defaults to 6379. Only host:port is
  # ever printed.
  rest="${REDIS_URL#*://}"; rest="${rest%%/*}"; rest="${rest%%\?*}"
  hp="${rest##*@}"; userinfo=""; [ "$hp" != "$rest" ] && userinfo="${rest%@*}"
  if [[ "$hp" == \[* ]]; then # [IPv6]:port
    host="${hp%%]*}"; host="${host#[}"; port="${hp##*]}"; port="${port#:}"; [ -z "$port" ] && port=6379
  else
    host="${hp%:*}"; port="${hp##*:}"; [ "$hp" = "${hp%:*}" ] && port=6379
  fi
  decoded() { printf '%b' "${1//%/\\x}"; } # percent-decoded, as ioredis reads it
  user="$(decoded "${userinfo%%:*}")"; password=""; [ "$userinfo" != "${userinfo%%:*}" ] && password="$(decoded "${userinfo#*:}")"
  if [[ "$REDIS_URL" == rediss://* ]]; then
    # TLS (its CA is the worker's business): that the port takes a connection is enough here.
    if { exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null; then exec 3>&-; echo "$REDIS_URL"; exit 0; fi
  elif answers "$host" "$port" "$user" "$password"; then echo "$REDIS_URL"; exit 0; fi
  echo "ensure_redis: the Redis of REDIS_URL ($host:$port) does not answer; looking for another Redis" >&2
fi
if answers 127.0.0.1 6379; then echo "redis://127.0.0.1:6379"; exit 0; fi

command -v redis-server >/dev/null || { echo "ensure_redis: no Redis answers and redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
mkdir -p "$root/.tools"
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --pidfile "$root/.tools/redis-$port.pid" --logfile "$root/.tools/redis-$port.log" >&2
for _ in $(seq 1 100); do answers 127.0.0.1 "$port" && { echo "redis://127.0.0.1:$port"; exit 0; }; sleep 0.05; done
echo "ensure_redis: started redis-server on $port but it does not answer (see .tools/redis-$port.log)" >&2
exit 1
