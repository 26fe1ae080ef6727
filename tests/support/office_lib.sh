# office_lib.sh — what the back office's curl tests share (tests/office/*.sh), sourced
# after HERE (the test's directory) and OFFICE_TEST (a word for its work directory's name)
# are set: a work directory W removed however the test ends, the office started by
# office_run.sh and stopped with it, curl through the test CA, the login form.
W=$(mktemp -d "${TMPDIR:-/tmp}/citypass-$OFFICE_TEST-XXXXXX")
. "$HERE/../support/procs.sh"
office_cleanup() {
	sh "$HERE/../support/office_run.sh" stop "$W/s" >/dev/null 2>&1
	rm -rf "$W"
}
on_exit office_cleanup
# fail SENTENCE: the last page's error and the office's log with it
fail() {
	echo "FAIL: $*" >&2
	[ ! -f "$W/body" ] || sed -n 's/.*class="erreur"[^>]*><p>\([^<]*\).*/page error: \1/p' "$W/body" >&2
	[ ! -f "$W/s/office.log" ] || sed 's/^/office: /' "$W/s/office.log" >&2
	exit 1
}
ok() { echo "ok - $*"; }
val() { sed -n "s/^$1=//p" "$W/env"; }
pw_of() { sed -n "s/^LOGIN=$1 PASSWORD=//p" "$W/env"; }
# office_start [VAR=VALUE]...: office_run.sh start with those in its environment
# (OFFICE_BENCH, OFFICE_ARGS, HIL); then URL, CA, DATA and CITYPASS_DATA are set
office_start() {
	env "$@" sh "$HERE/../support/office_run.sh" start "$W/s" >"$W/env" ||
		fail "office_run.sh start"
	URL=$(val URL) CA=$(val CA) DATA=$(val DATA)
	[ -n "$URL" ] && [ -n "$DATA" ] || fail "office_run.sh printed: $(cat "$W/env")"
	export CITYPASS_DATA="$DATA"
}
# c JAR ARGS...: curl through the test CA, the body to $W/body and the headers to
# $W/headers; prints the status
c() {
	jar=$1
	shift
	curl -sS --cacert "$CA" -c "$jar" -b "$jar" -o "$W/body" -D "$W/headers" \
		-w '%{http_code}' "$@"
}
body_has() { grep -q -- "$1" "$W/body"; }
csrf_of_body() { sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p' "$W/body" | head -1; }
# login JAR LOGIN PASSWORD: the status of the POST (303 when logged in)
login() {
	rm -f "$1"
	[ "$(c "$1" "$URL/connexion")" = 200 ] || fail "GET /connexion"
	t=$(csrf_of_body)
	c "$1" --data-urlencode "csrf=$t" --data-urlencode "identifiant=$2" \
		--data-urlencode "mot_de_passe=$3" "$URL/connexion"
}
