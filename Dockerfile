# syntax=docker/dockerfile:1
# Gatehouse image: build with dev dependencies, run with production dependencies only, as a
# non-root user. Build (from the repository root):
#   docker build --build-arg GIT_SHA="$(git rev-parse HEAD)" -t gatehouse:"$(git rev-parse --short HEAD)" .
# APP_VERSION defaults to package.json's version; both end up in GET /health.

# Pin the exact Node 24 LTS release the project is tested on (the `node` dev dependency in
# package.json); in a registry that can, pin it by digest too (node:24.21.0-bookworm-slim@sha256:...).
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# ---- production dependencies only (this stage's node_modules is what the image runs with)
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: nothing at run time needs them (the Prisma client is generated at build).
# --omit=dev still installs optional peers of production packages (the prisma CLI with Prisma
# Studio, typescript: ~250 MB); the lockfile marks them devOptional, so they go too. Plain
# optional packages (argon2's native binary for this platform) stay.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && node -e "const fs = require('node:fs'); \
    for (const [dir, entry] of Object.entries(require('./package-lock.json').packages)) \
      if (entry.devOptional) fs.rmSync(dir, { recursive: true, force: true });" \
  && npm cache clean --force

# ---- build: Prisma client generation + TypeScript
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json prisma.config.ts ./
COPY prisma ./prisma
COPY proto ./proto
COPY src ./src
RUN npm run build
# declared after the build so a new commit does not invalidate the cached layers above
ARG APP_VERSION=""
ARG GIT_SHA="unknown"
RUN node -e "const fs = require('node:fs'); \
  const version = process.env.APP_VERSION || require('./package.json').version; \
  fs.writeFileSync('build-info.json', JSON.stringify({ version, commit: process.env.GIT_SHA || 'unknown' }) + '\n');"

# ---- runtime
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    GRPC_PORT=50051 \
    DATA_DIR=/var/lib/gatehouse
WORKDIR /app
# the application files stay root-owned and read-only for the process; only DATA_DIR is its own
RUN mkdir -p /var/lib/gatehouse && chown node:node /var/lib/gatehouse
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/build-info.json ./build-info.json
COPY package.json ./
COPY prisma/migrations ./prisma/migrations
COPY proto ./proto
USER node
EXPOSE 3000 50051
# Swarm's stack file sets its own healthcheck; this one serves plain `docker run`.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/ready', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ARG APP_VERSION=""
ARG GIT_SHA="unknown"
LABEL org.opencontainers.image.title="gatehouse" \
      org.opencontainers.image.revision="${GIT_SHA}" \
      org.opencontainers.image.version="${APP_VERSION}"
# exec form: node is PID 1 and receives SIGTERM itself (graceful shutdown, see README).
# The garbage collector's sizing is pinned (the same flags as `npm start`; README "Memory and
# garbage collection"): without them V8 sizes the young generation from the container's memory
# limit, and full collections come every few seconds under load.
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=300", "dist/main.js"]
