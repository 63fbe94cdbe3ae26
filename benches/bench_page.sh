# Sourced by the browser benches: `bench_page URL [MARK]` loads a bench page once in headless
# Chromium and prints the report line it logs: `MARK-done {…}` or `MARK-error …` (MARK: wgpt-bench,
# www/bench.html's; tjs-bench, benches/transformers_js/'s).
bench_page() {
  PROFILE=$(mktemp -d)
  LOG=$(mktemp)
  chromium --headless --no-sandbox --no-first-run --disable-background-networking \
    --user-data-dir=$PROFILE --enable-logging=stderr --v=0 "$1" >$LOG 2>&1 &
  CHROME=$!
  # The page logs one line when done; chromium itself does not exit.
  MARK=${2:-wgpt-bench}
  for _ in $(seq 600); do grep -q "$MARK-" $LOG && break; sleep 1; done
  kill $CHROME 2>/dev/null || true
  wait $CHROME 2>/dev/null || true
  grep -o "$MARK-[a-z]* .*" $LOG | head -1 | sed 's/", source.*//'
  rm -rf $PROFILE $LOG
}
