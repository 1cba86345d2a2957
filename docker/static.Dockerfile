# Image of nginx with the release's static files inside, for hosts that share no volume with
# web (`cargo xtask release --push` builds and pushes it; on Docker Swarm it is the `static`
# service, which serves them on port 8080 to the edge nginx, see docker/stack.yml).
#
# Build context: a scratch directory the xtask fills with static.tar.gz, the release's
# reproducible static tarball byte for byte (the file `verify` checks), and
# docker/nginx/static.conf. ADD unpacks the tarball as it is: the same paths, bytes, modes
# and mtimes. Builds with BuildKit and with the classic builder alike.
#
# Build argument:
#   NGINX_IMAGE   the nginx base image, as the production stack's nginx service uses it

ARG NGINX_IMAGE=nginx:1.27-alpine
FROM ${NGINX_IMAGE}

COPY docker/nginx/static.conf /etc/nginx/templates/default.conf.template
ADD static.tar.gz /srv/static/
