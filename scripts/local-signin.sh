#!/usr/bin/env bash
# Signs the desktop app (and the CLI: they share a config dir) in to the
# local server that `make run` starts, so its first screen offers "Share a
# folder" with no further step.
#
#   scripts/local-signin.sh SERVER_URL DATA_DIR SERVER_BIN CLIENT_BIN [USER_NAME]
#
# The config dir is the app's default one, or VIDSYNC_CONFIG_DIR. Waits
# (LOCAL_SIGNIN_WAIT_S, 30 s by default) for SERVER_URL/health, then:
# - already signed in to SERVER_URL with a token it accepts: nothing to do;
# - signed in to another server: left alone (the user chose it);
# - else: `vidsync-server user add USER_NAME` makes a token in DATA_DIR and
#   `vidsync login` saves it (checked against the server first).
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 SERVER_URL DATA_DIR SERVER_BIN CLIENT_BIN [USER_NAME]" >&2
  exit 2
fi
url="${1%/}"
data_dir="$2"
server_bin="$3"
client_bin="$4"
name="${5:-${USER:-me}}"

wait_s="${LOCAL_SIGNIN_WAIT_S:-30}"
deadline=$((SECONDS + wait_s))
until curl -fsS -o /dev/null "$url/health" 2>/dev/null; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "local-signin: no answer from $url/health within $wait_s s" >&2
    exit 1
  fi
  sleep 0.2
done

# The app's config dir: VIDSYNC_CONFIG_DIR, else the platform's config dir
# + vidsync (what `vidsync_client::config::default_dir` picks).
if [ -n "${VIDSYNC_CONFIG_DIR:-}" ]; then
  config_dir="$VIDSYNC_CONFIG_DIR"
elif [ "$(uname -s)" = Darwin ]; then
  config_dir="$HOME/Library/Application Support/vidsync"
else
  config_dir="${XDG_CONFIG_HOME:-$HOME/.config}/vidsync"
fi
config_file="$config_dir/config.json"
read -r saved_server saved_token < <(python3 - "$config_file" <<'EOF'
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        cfg = json.load(f)
except (OSError, ValueError):
    cfg = {}
print((cfg.get("server") or "-").rstrip("/"), cfg.get("token") or "-")
EOF
)

if [ "$saved_server" = "$url" ] && [ "$saved_token" != "-" ] &&
  curl -fsS -o /dev/null -H "Authorization: Bearer $saved_token" "$url/api/projects"; then
  echo "local-signin: already signed in to $url ($config_file)"
  exit 0
fi
if [ "$saved_server" != "-" ] && [ "$saved_server" != "$url" ] && [ "$saved_token" != "-" ]; then
  echo "local-signin: the app is signed in to $saved_server; leaving it so ($config_file)"
  exit 0
fi

token=$("$server_bin" user add "$name" --data-dir "$data_dir")
"$client_bin" --config-dir "$config_dir" login --server "$url" --token "$token" >/dev/null
echo "local-signin: made user $name and signed the app in to $url ($config_file)"
