#!/bin/sh
# As the official image's script of this name: render every *.template under the template
# directory into the output directory, substituting only the variables whose names match
# NGINX_ENVSUBST_FILTER (all defined variables when it is unset).
set -eu
template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
filter=${NGINX_ENVSUBST_FILTER:-}
[ -d "$template_dir" ] || exit 0
names=$(env | cut -d= -f1 | grep -E -- "${filter:-.}" || true)
defined=$(for name in $names; do printf '${%s} ' "$name"; done)
find "$template_dir" -follow -type f -name "*$suffix" | while read -r template; do
    relative=${template#"$template_dir/"}
    output="$output_dir/${relative%"$suffix"}"
    mkdir -p "$(dirname "$output")"
    envsubst "$defined" < "$template" > "$output"
    echo "$0: rendered $template to $output"
done
