# syntax=docker/dockerfile:1
# The verifier (`npm run verifier` = node --import tsx gpu-backend/main.ts). Build from the repository root:
#   docker build -f infra/docker/verifier.Dockerfile -t alia-verifier .                       # CPU, or in front of SGLang
#   docker build -f infra/docker/verifier.Dockerfile -t alia-verifier:cuda \
#     --build-arg ONNXRUNTIME_CUDA=true \
#     --build-arg RUNTIME_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 .                # onnxruntime-node on CUDA 12
# With VERIFIER_ENGINE=sglang the target runs in SGLang and this image needs no GPU libraries.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG RUNTIME_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
ARG ONNXRUNTIME_CUDA=false
WORKDIR /app
# npm 11 reads package.json "allowScripts"; node 20's npm 10 would run every install script.
RUN npm install -g npm@11.19.1
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# onnxruntime-node's CUDA 12 download is denied at install (README, "Dependency install scripts");
# GPU images run it explicitly, exactly as `npm run onnxruntime:cuda` does on a host.
RUN if [ "$ONNXRUNTIME_CUDA" = "true" ]; then npm run onnxruntime:cuda; fi

# The node binary, for a runtime base without one (the CUDA image).
FROM ${NODE_IMAGE} AS node

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    VERIFIER_HOST=0.0.0.0 \
    VERIFIER_PORT=8788 \
    MODEL_CACHE_DIR=/var/cache/alia-verifier/models
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY gpu-backend ./gpu-backend
# The verifier shares the protocol, model store and engines' code with the edge.
COPY src ./src
# The measured H200 pass times behind the GPU cost models (src/common/h200-alia-40b.ts imports them).
COPY measurements/h200-pass-times.json ./measurements/
# A fixed unprivileged uid: the CUDA base has no "node" user.
RUN (getent passwd 10001 >/dev/null || useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin verifier) \
 && mkdir -p /var/cache/alia-verifier/models && chown -R 10001:10001 /var/cache/alia-verifier
USER 10001:10001
VOLUME ["/var/cache/alia-verifier/models"]
EXPOSE 8788
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.VERIFIER_PORT||8788)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "--import", "tsx", "gpu-backend/main.ts"]
