#!/bin/sh
# Entry point of the nginx stand-in: a reduced version of the official image's
# /docker-entrypoint.sh (runs /docker-entrypoint.d/*.sh and renders
# /etc/nginx/templates/*.template into /etc/nginx/conf.d with envsubst).
set -e

if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    for f in $(find /docker-entrypoint.d/ -follow -type f -name '*.sh' 2>/dev/null | sort -V); do
        if [ -x "$f" ]; then
            echo "$0: launching $f" >&2
            "$f"
        fi
    done

    template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
    suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
    output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
    if [ -d "$template_dir" ]; then
        # Substitute only variables that are defined, as upstream does.
        # shellcheck disable=SC2016,SC2046
        defined_envs=$(printf '${%s} ' $(env | cut -d= -f1))
        for template in $(find "$template_dir" -follow -type f -name "*$suffix" | sort); do
            relative_path="${template#"$template_dir/"}"
            output_path="$output_dir/${relative_path%"$suffix"}"
            mkdir -p "$(dirname "$output_path")"
            echo "$0: rendering $template to $output_path" >&2
            envsubst "$defined_envs" < "$template" > "$output_path"
        done
    fi
fi

exec "$@"
