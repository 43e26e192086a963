# Sourced by the scripts that start the server on port 0: `served_address LOG PID` prints the
# http://host:port the server logged ("serving on …"), waiting up to 30 s; it fails, showing the
# log, when the server exits first or never says.
served_address() {
  local log=$1 pid=$2 base=''
  for _ in $(seq 300); do
    base=$(grep -ao 'serving on http://[0-9.:]*' "$log" | sed 's/serving on //') || true
    [ -n "$base" ] && { echo "$base"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server did not start:" >&2
  cat "$log" >&2
  return 1
}
