#!/usr/bin/env bash
# Regenerates README.md's configuration reference from the key table (switchyard --print-config-reference).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build >/dev/null
"$(swift build --show-bin-path)/switchyard" --print-config-reference > /tmp/sy-config-ref.md
python3 - <<'PY'
s = open('README.md').read()
ref = open('/tmp/sy-config-ref.md').read().strip()
start = s.index('| section | key |')
end = s.index('\n## ', start)
open('README.md', 'w').write(s[:start] + ref + "\n" + s[end:])
PY
echo "README.md configuration reference updated"
