#!/usr/bin/env bash
# A secret source is never echoed (issue 10, point 6a).
#
# The attack: a PIN typed where its source belongs ("--pin-source
# env:24681357", "file:24681357", "fd:24681357", or the PIN alone) was
# repeated in the error message, and so reached the terminal, the logs
# and the scrollback.  Every form, from every place a source is read (the
# command line, the environment, the config file, --password-source,
# --so-pin-source), must fail without the PIN in its output.
. "${TOP_SRCDIR:-$(dirname "$0")/../..}/tests/token/lib.sh"
setup_token echo
PIN=24681357
make_p12 cert echo.custody.test 30 rsa:2048

# never_echoed DESCRIPTION COMMAND... — COMMAND (custody, or env ...
# custody) fails, and its output holds no trace of the PIN.
never_echoed() {
	local d=$1
	shift
	out=$("$@" 2>"$T/stderr")
	rc=$?
	err=$(cat "$T/stderr")
	if [ "$rc" -eq 0 ]; then
		not_ok "$d" "succeeded: $*" "stderr: $err"
	elif grep -q "$PIN" <<<"$out$err"; then
		not_ok "$d" "the PIN is in the output of: $*" "stderr: $err"
	else
		ok "$d"
	fi
}

for form in "$PIN" "env:$PIN" "file:$PIN" "fd:$PIN" "prompt:$PIN" "pin:$PIN"; do
	never_echoed "--pin-source $form: the PIN is not echoed" \
		"$CUSTODY_BIN" list --pin-source "$form"
done
for form in "$PIN" "env:$PIN" "file:$PIN"; do
	never_echoed "CUSTODY_PIN_SOURCE=$form: the PIN is not echoed" \
		env CUSTODY_PIN_SOURCE="$form" "$CUSTODY_BIN" list
	printf '[token]\npin-source = %s\n' "$form" >"$T/echo.conf"
	never_echoed "pin-source = $form in the config file: the PIN is not echoed" \
		env CUSTODY_PIN_SOURCE= "$CUSTODY_BIN" -c "$T/echo.conf" list
done
for form in "env:$PIN" "file:$PIN" "fd:$PIN"; do
	never_echoed "--password-source $form: the password is not echoed" \
		"$CUSTODY_BIN" import --path "$T/cert.p12" --password-source "$form"
	never_echoed "--so-pin-source $form: the SO PIN is not echoed" \
		"$CUSTODY_BIN" init-token --label other --so-pin-source "$form" \
		--pin-source "$CUSTODY_PIN_SOURCE"
done
done_testing
