#!/usr/bin/env bash
# Entry point of the postgres stand-in: a reduced version of the official image's
# docker-entrypoint.sh. On first start (empty $PGDATA) it runs initdb with
# POSTGRES_USER/POSTGRES_PASSWORD (or, as upstream, the files *_FILE name), creates POSTGRES_DB, runs
# /docker-entrypoint-initdb.d/*.sh|*.sql, and allows password (scram-sha-256)
# connections from any address. Then it runs the server in the foreground as the
# postgres user.
set -Eeo pipefail

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$1" = 'postgres' ] && [ "$(id -u)" = '0' ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chown postgres:postgres /var/run/postgresql
    chmod 700 "$PGDATA" || :
    chmod 3777 /var/run/postgresql || :
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

# VAR_FILE names a file holding VAR's value (a Swarm secret), as upstream.
for var in POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB; do
    file_var="${var}_FILE"
    if [ -n "${!file_var:-}" ]; then
        if [ -n "${!var:-}" ]; then
            echo "error: both $var and $file_var are set (but are exclusive)" >&2
            exit 1
        fi
        export "$var=$(< "${!file_var}")"
        unset "$file_var"
    fi
done

if [ "$1" = 'postgres' ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_USER:=postgres}"
    : "${POSTGRES_DB:=$POSTGRES_USER}"
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != 'trust' ]; then
        echo 'error: database is uninitialized and superuser password is not specified' >&2
        echo '       set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)' >&2
        exit 1
    fi

    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        # shellcheck disable=SC2086
        initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
            ${POSTGRES_INITDB_ARGS:-}
    else
        # shellcheck disable=SC2086
        initdb --username="$POSTGRES_USER" ${POSTGRES_INITDB_ARGS:-}
    fi
    printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

    # Temporary server on the unix socket only, for the setup steps.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
    psql_cmd=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --no-password)
    if [ "$POSTGRES_DB" != 'postgres' ]; then
        "${psql_cmd[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh)
                # shellcheck disable=SC1090
                if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
            *.sql)
                "${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo 'PostgreSQL init process complete; ready for start up.' >&2
fi

exec "$@"
