# Sourced by the browser benches: `bench_page URL` loads www/bench.html?run&… once in headless
# Chromium and prints the report line the page logs (`wgpt-bench-done {…}` or `wgpt-bench-error …`).
bench_page() {
  PROFILE=$(mktemp -d)
  LOG=$(mktemp)
  chromium --headless --no-sandbox --no-first-run --disable-background-networking \
    --user-data-dir=$PROFILE --enable-logging=stderr --v=0 "$1" >$LOG 2>&1 &
  CHROME=$!
  # The page logs one line when done; chromium itself does not exit.
  for _ in $(seq 600); do grep -q 'wgpt-bench-' $LOG && break; sleep 1; done
  kill $CHROME 2>/dev/null || true
  wait $CHROME 2>/dev/null || true
  grep -o 'wgpt-bench-[a-z]* .*' $LOG | head -1 | sed 's/", source.*//'
  rm -rf $PROFILE $LOG
}
