# syntax=docker/dockerfile:1
# The Node edge (`npm start` = node --import tsx src/node.ts). Build from the repository root:
#   docker build -f infra/docker/edge.Dockerfile -t alia-edge .
# No model is baked in: bundles come from S3/MinIO (MODEL_STORE=s3) into MODEL_CACHE_DIR, a volume, so a
# larger drafter (Salamandra-2b q4) changes the bucket, not the image. There is no build step (README,
# "Node edge / container"): tsx runs the sources, so the runtime needs production dependencies only.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# The lockfile's install-script approvals (package.json "allowScripts", .npmrc strict-allow-scripts) are
# npm 11 features; node 20 ships npm 10, which would ignore them and run every install script.
RUN npm install -g npm@11.19.1
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8787 \
    EMBEDDED_VERIFIER=false \
    MODEL_CACHE_DIR=/var/cache/alia-edge/models
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
# The measured H200 pass times behind the GPU cost models (src/common/h200-alia-40b.ts imports them).
COPY measurements/h200-pass-times.json ./measurements/
# The embedded verifier's entry (EMBEDDED_VERIFIER=true) and the shared protocol live here.
COPY gpu-backend ./gpu-backend
# The operator CLIs that make sense next to an edge: keys, bundle upload, usage export.
COPY scripts/cli.ts scripts/keys.ts scripts/upload-bundle.ts scripts/export-usage.ts ./scripts/
# The node image's unprivileged user (uid 1000); the sources stay root-owned and read-only to it.
RUN mkdir -p /var/cache/alia-edge/models && chown -R node:node /var/cache/alia-edge
USER node
VOLUME ["/var/cache/alia-edge/models"]
EXPOSE 8787
# The slim image has no curl: node's fetch asks the edge's liveness route.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8787)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node as PID 1 (not npm): it handles SIGTERM itself and drains (README, "Signals and shutdown").
CMD ["node", "--import", "tsx", "src/node.ts"]
