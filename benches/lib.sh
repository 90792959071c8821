# Helpers shared by load.sh and scripts/build-pgo (sourced, not run).
# Messages start with the name of the script that sources this.

# wait_line FILE PID: prints the address from the first "listening on ADDR"
# line of FILE, waiting at most 10 s and failing if PID exits first.
wait_line() {
    local file=$1 pid=$2 i line
    for ((i = 0; i < 100; i++)); do
        line=$(grep -m1 -o 'listening on [0-9.:]*' "$file" 2>/dev/null || true)
        if [[ -n $line ]]; then
            echo "${line#listening on }"
            return
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "${0##*/}: no readiness line in $file" >&2
    cat "$file" "$file.err" >&2 2>/dev/null || true
    return 1
}

# self_signed_cert DIR: DIR/cert.pem and DIR/key.pem, an ECDSA P-256
# certificate for localhost and 127.0.0.1, valid 2 days.
self_signed_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$1/key.pem" -out "$1/cert.pem" 2>"$1/openssl.err" || {
        echo "${0##*/}: openssl could not make the certificate:" >&2
        cat "$1/openssl.err" >&2
        return 1
    }
}
