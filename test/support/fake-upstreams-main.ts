/**
 * `npm run dev:upstreams`: the fake aggregate, projection and runner next to a local Gatehouse,
 * for exploring the proxies by hand. Writes a routing document that places every tenant ("*")
 * on the fakes and starts `dist/main.js` with it (ROUTING_FILE, single-node mode) unless
 * `--no-gatehouse` is given. Ports: FAKE_AGGREGATE_PORT (50061), FAKE_PROJECTION_PORT (4101),
 * FAKE_RUNNER_PORT (4201); Gatehouse keeps its own environment (PORT, GRPC_PORT, DATA_DIR...).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fakeAggregate, fakeHttp } from './fake-upstreams';
import { productionNodeArgs } from './process';

function findRoot(): string {
  let directory = __dirname;
  for (let depth = 0; depth < 8; depth += 1) {
    if (fs.existsSync(path.join(directory, 'package.json')) && fs.existsSync(path.join(directory, 'proto'))) return directory;
    directory = path.dirname(directory);
  }
  return process.cwd();
}

async function main(): Promise<void> {
  const aggregate = await fakeAggregate('aggregate-dev', Number(process.env.FAKE_AGGREGATE_PORT ?? 50061));
  const projection = await fakeHttp('projection-dev', Number(process.env.FAKE_PROJECTION_PORT ?? 4101));
  const runner = await fakeHttp('runner-dev', Number(process.env.FAKE_RUNNER_PORT ?? 4201));
  const root = findRoot();
  const dataDir = path.resolve(process.env.DATA_DIR ?? path.join(root, 'data'));
  fs.mkdirSync(dataDir, { recursive: true });
  const routingFile = path.join(dataDir, 'dev-routing.json');
  fs.writeFileSync(
    routingFile,
    JSON.stringify(
      {
        aggregate: { placement: { '*': 'dev' }, shards: { dev: [aggregate.endpoint] } },
        projection: { placement: { '*': 'dev' }, shards: { dev: [projection.endpoint] } },
        runner: { placement: { '*': 'dev' }, shards: { dev: [runner.endpoint] } },
      },
      null,
      2,
    ),
  );
  console.log(`fake aggregate (gRPC)        ${aggregate.endpoint}`);
  console.log(`fake projection (HTTP + WS)  ${projection.endpoint}`);
  console.log(`fake runner (HTTP)           ${runner.endpoint}`);
  console.log(`routing document             ${routingFile}`);

  const report = setInterval(() => {
    const total = aggregate.calls.length + projection.calls.length + runner.calls.length;
    if (total > 0) {
      console.log(
        `calls so far: aggregate ${aggregate.calls.length}, projection ${projection.calls.length}, runner ${runner.calls.length}`,
      );
    }
  }, 10_000);
  report.unref();

  let gatehouse: ReturnType<typeof spawn> | undefined;
  if (!process.argv.includes('--no-gatehouse')) {
    const main = path.join(root, 'dist', 'main.js');
    if (!fs.existsSync(main)) throw new Error('dist/main.js missing: run `npm run build` first');
    gatehouse = spawn(process.execPath, [...productionNodeArgs(root), main], {
      env: { ...process.env, ROUTING_FILE: routingFile, NATS_URL: process.env.NATS_URL ?? '' },
      stdio: 'inherit',
    });
    console.log('gatehouse starting with ROUTING_FILE set (Ctrl-C stops everything)');
  } else {
    console.log(`start Gatehouse yourself with ROUTING_FILE=${routingFile}`);
  }
  const stop = () => {
    gatehouse?.kill('SIGTERM');
    void Promise.all([aggregate.stop(), projection.stop(), runner.stop()]).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  gatehouse?.on('exit', (code) => {
    console.log(`gatehouse exited (${code ?? 'signal'})`);
    stop();
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
