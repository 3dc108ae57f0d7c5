# lockstep sidecar image: node dist/lockstep.mjs run --config /etc/lockstep/lockstep.yaml
# Build: docker build -t lockstep .   (.ci/run builds it where a container engine runs)
#
# Node 26, the Active LTS line (Node 24 is in maintenance since October 2026). The image runs
# as uid 1000 (numeric, so Kubernetes can verify runAsNonRoot) and writes nothing: it works on
# a read-only root filesystem. It holds no optional or dev dependencies (embedded-postgres,
# pino-pretty, TypeScript), and no npm.
ARG NODE_IMAGE=node:26-trixie-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# TypeScript and esbuild are dev dependencies; esbuild's binary is an optional one of its own.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY plugin ./plugin
COPY adapters ./adapters
COPY migrations ./migrations
COPY scripts/bundle-cli.ts ./scripts/
RUN npx tsc -p tsconfig.json && npx tsx scripts/bundle-cli.ts

FROM ${NODE_IMAGE} AS production-dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
# npm and corepack are not needed to run the sidecar: fewer tools, fewer CVEs to patch.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
WORKDIR /app
COPY package.json ./
COPY --from=production-dependencies /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The official image's `node` user, by number.
USER 1000:1000
# /healthz, /readyz, /metrics, /status: http.host must be opened (0.0.0.0) for probes and scrapes.
EXPOSE 9187
ENTRYPOINT ["node", "dist/lockstep.mjs"]
CMD ["run", "--config", "/etc/lockstep/lockstep.yaml"]
