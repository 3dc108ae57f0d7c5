# lockstep sidecar image: node dist/plugin/cli/main.js run --config /etc/lockstep/lockstep.yaml
# Build: docker build -t lockstep .   (not built in CI here: no Docker engine)

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The build needs the dev dependencies (TypeScript); the demo's embedded PostgreSQL is not needed here.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY plugin ./plugin
COPY adapters ./adapters
COPY migrations ./migrations
RUN npx tsc -p tsconfig.json

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
# /healthz, /readyz, /metrics, /status (http.host must be opened, e.g. LOCKSTEP_HTTP_HOST=0.0.0.0, for probes from outside the pod)
EXPOSE 9187
ENTRYPOINT ["node", "dist/plugin/cli/main.js"]
CMD ["run", "--config", "/etc/lockstep/lockstep.yaml"]
