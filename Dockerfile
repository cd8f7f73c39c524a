# syntax=docker/dockerfile:1
#
# One image per app, built from this single Dockerfile:
#
#   docker build --build-arg APP=contacts-svc -t crm/contacts-svc .
#   docker build --build-arg APP=gateway      -t crm/gateway .
#
# The apps run their TypeScript sources directly on Node 24 (native type
# stripping), so there is no compile step: the image holds the production
# node_modules, the shared libs and the sources of ONE app.
# Pin NODE_IMAGE by digest in CI for reproducible builds.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---------------------------------------------------------------------------
# source: the build context, minus what .dockerignore drops. Also extracts
# every workspace manifest (package.json) so that the deps stage below is only
# invalidated when a manifest or the lockfile changes, not on every code edit.
# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS source
WORKDIR /src
COPY . .
# proto/ and libs/ are copied into the final image; make sure they exist.
RUN set -eu; \
    mkdir -p proto libs /manifests; \
    cp package.json package-lock.json /manifests/; \
    if [ -f .npmrc ]; then cp .npmrc /manifests/; fi; \
    for dir in apps libs tools; do \
      if [ -d "$dir" ]; then \
        find "$dir" -mindepth 2 -maxdepth 2 -name package.json -exec cp --parents {} /manifests/ \; ; \
      fi; \
    done

# ---------------------------------------------------------------------------
# deps: production dependencies only. Workspaces (apps/*, libs/*, tools/*) are
# linked as symlinks under node_modules/@crm/*; the ones whose folder is not
# copied into the final image simply dangle and are never resolved.
# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV npm_config_fund=false \
    npm_config_audit=false \
    npm_config_update_notifier=false
COPY --from=source /manifests/ ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts

# ---------------------------------------------------------------------------
# runtime
# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG APP
RUN test -n "${APP}" || { echo "build-arg APP is required, e.g. --build-arg APP=contacts-svc" >&2; exit 1; }

ENV NODE_ENV=production \
    APP=${APP}
WORKDIR /app

# Everything is owned by root and read-only for the runtime user: the pods run
# with readOnlyRootFilesystem and only /tmp (an emptyDir) is writable.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=source /src/package.json ./package.json
COPY --from=source /src/libs ./libs
COPY --from=source /src/proto ./proto
COPY --from=source /src/apps/${APP} ./apps/${APP}
RUN test -f "apps/${APP}/src/main.ts" || { echo "apps/${APP}/src/main.ts not found" >&2; exit 1; }

# "node" is uid/gid 1000 in the official Node images (runAsUser: 1000 in k8s).
USER node

# gateway: HTTP 3000. Domain services: gRPC 50051 + ops HTTP 9400.
EXPOSE 3000 9400 50051

# Exec form cannot expand $APP, so go through sh and exec node so that it is
# PID 1 and receives SIGTERM directly.
CMD ["/bin/sh", "-c", "exec node \"apps/${APP}/src/main.ts\""]
