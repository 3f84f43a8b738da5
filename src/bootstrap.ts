import type { IncomingMessage, ServerResponse } from 'node:http';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import Fastify from 'fastify';
import type { Logger } from 'pino';
import { AppModule } from './app.module';
import type { AppConfig } from './config/config';
import { setupOpenApi } from './docs/openapi';
import { assertBootstrapAdminPassword } from './identity/bootstrap-admin-password';
import type { BootListener } from './observability/boot-listener';
import { installHttpPipeline, DEFAULT_BODY_LIMIT } from './observability/http-pipeline';
import { MetricsService } from './observability/metrics.service';
import { ReadinessService } from './observability/readiness.service';
import { requestTimeoutOptions } from './observability/request-timeout';
import { CommandGrpcController } from './proxy/command-grpc.controller';
import { CommandGrpcServer } from './proxy/grpc-server';
import { installProxyBodyParser } from './proxy/proxy-body-parser';
import { installFastRoutes } from './common/fast-routes';
import { PROXY_FAST_ROUTES, ProxyFastPath } from './proxy/proxy-fast-path';
import { FORWARD_FAST_ROUTES, forwardFastHandlers } from './forward/forward-fast-path';
import { SIGNIN_FAST_ROUTES, signinFastHandlers } from './authn/password/signin-fast-path';
import { SubscriptionAdmission } from './proxy/subscription-admission.service';
import { SubscriptionWsAdapter } from './proxy/subscription-ws.adapter';
import type { Server as HttpsServer } from 'node:https';
import { clientCertificateReader, httpsServerOptions, refuseUnverifiedClientCertificates } from './observability/client-certificate';
import { randomUuid } from './common/uuid';

export interface Gatehouse {
  app: NestFastifyApplication;
  config: AppConfig;
  logger: Logger;
  /** base URL once listening */
  url: string;
  /** SIGTERM behaviour: /ready 503 at once, drain, finish in-flight requests, close. */
  shutdown(): Promise<void>;
}

/**
 * Builds and starts Gatehouse; used by main.ts and by in-process tests. With `listener` (the
 * process's early listener, main.ts) the application takes over that server instead of
 * binding the port itself, so /health has answered since the process began.
 */
export async function startGatehouse(config: AppConfig, logger: Logger, options: { listener?: BootListener } = {}): Promise<Gatehouse> {
  assertBootstrapAdminPassword(config);
  const metrics = new MetricsService();
  const https = options.listener === undefined ? httpsServerOptions(config) : undefined;
  const fastify = Fastify({
    ...(https === undefined ? {} : { https }),
    bodyLimit: DEFAULT_BODY_LIMIT,
    trustProxy: config.TRUST_PROXY,
    genReqId: randomUuid,
    // idle keep-alive sockets are closed at shutdown; busy ones finish their request
    forceCloseConnections: 'idle',
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: false },
    ...(options.listener !== undefined
      ? { serverFactory: (handler: (request: IncomingMessage, response: ServerResponse) => void) => options.listener!.adopt(handler) }
      : {}),
    // CONTRACT §2: stalled headers or body → 408 and the connection closed within REQUEST_TIMEOUT_MS
    ...requestTimeoutOptions(config.REQUEST_TIMEOUT_MS),
  });
  if (https?.requestCert === true && https.rejectUnauthorized === false) refuseUnverifiedClientCertificates(fastify.server as HttpsServer);
  installHttpPipeline(fastify, logger, metrics, { clientCertSubject: clientCertificateReader(config.TRUST_PROXY) });
  // the proxied HTTP routes, the decision API and the password sign-in stay Nest routes
  // (declarations, snapshot, OpenAPI) but Fastify calls their handler directly
  const fastRoutes = installFastRoutes(fastify, [...PROXY_FAST_ROUTES, ...FORWARD_FAST_ROUTES, ...SIGNIN_FAST_ROUTES]);

  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.register({ config, logger, metrics }),
    new FastifyAdapter(fastify),
    { logger: false, abortOnError: false, bodyParser: true },
  );
  // WebSocket gateways (/v1/subscribe) share the HTTP port; the adapter admits before any 101
  app.useWebSocketAdapter(new SubscriptionWsAdapter(app, app.get(SubscriptionAdmission)));
  if (config.CORS_ORIGINS.length > 0) {
    app.enableCors({
      origin: config.CORS_ORIGINS,
      credentials: false,
      // what the API uses and reads, named: @fastify/cors would otherwise echo any requested header
      methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'x-tenant-id', 'x-correlation-id', 'traceparent', 'if-match'],
      exposedHeaders: ['x-request-id', 'x-correlation-id', 'traceparent', 'retry-after', 'etag'],
    });
  }
  fastRoutes.bind(new Map([...ProxyFastPath.of(app).handlers(), ...forwardFastHandlers(app), ...signinFastHandlers(app)]));
  setupOpenApi(app);
  installProxyBodyParser(app, DEFAULT_BODY_LIMIT);
  let grpcServer: CommandGrpcServer | undefined;
  if (config.GRPC_PORT !== 0) {
    // CONTRACT §7: CommandService on GRPC_PORT, served by the app's CommandGrpcController; it
    // starts once every module is initialised, before HTTP answers /health.
    await app.init();
    grpcServer = new CommandGrpcServer(app.get(CommandGrpcController), config, logger);
    await grpcServer.listen(config.GRPC_PORT);
  }
  await app.listen({ port: options.listener?.port ?? config.PORT, host: '0.0.0.0' });
  const address = fastify.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.PORT;
  const readiness = app.get(ReadinessService);
  readiness.markStarted();
  logger.info(
    {
      port,
      node: process.version,
      grpc_port: config.GRPC_PORT === 0 ? null : config.GRPC_PORT,
      embedded_database: config.DATABASE_URL === undefined,
      nats: config.NATS_URL !== undefined,
    },
    'gatehouse listening',
  );

  let closing: Promise<void> | undefined;
  return {
    app,
    config,
    logger,
    url: `${config.TLS_CERT_FILE === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    shutdown() {
      closing ??= (async () => {
        readiness.beginShutdown();
        if (config.SHUTDOWN_DRAIN_MS > 0) await new Promise((resolve) => setTimeout(resolve, config.SHUTDOWN_DRAIN_MS));
        // gRPC calls in flight are answered before the providers they use shut down
        await grpcServer?.close();
        await app.close();
      })();
      return closing;
    },
  };
}
