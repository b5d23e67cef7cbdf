# One image for every Corolla role: `corolla dht`, `corolla serve`, `corolla gateway` (see docker-compose.yml).
# The CLI is compiled in place (bin/compiled.js, with the esbuild that tsx, a runtime dependency, brings), so each
# role starts without the TypeScript loader.
FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    # onnxruntime-node's install script fetches CUDA binaries; the CPU ones ship in the package
    ONNXRUNTIME_NODE_INSTALL=skip \
    ORT_DISABLE_TELEMETRY=1 \
    COROLLA_DATA_DIR=/data/gateway \
    COROLLA_CACHE=/data/cache

WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY bin ./bin
COPY src ./src
COPY models ./models
COPY migrations ./migrations
COPY tsconfig.json ./
RUN node bin/compiled.js

RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# 8100: the gateway's HTTP API; 31337: libp2p (TCP)
EXPOSE 8100 31337
ENTRYPOINT ["node", "bin/corolla.js"]
CMD ["--help"]
