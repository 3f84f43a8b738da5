import {
  applyDecorators,
  Injectable,
  SetMetadata,
  UseGuards,
  UseInterceptors,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { finalize, type Observable } from 'rxjs';
import { ROUTE_CLASS, type RouteClass } from './route-class';
import { RPC_ADMISSION, TrafficLimitGuard, type Admission } from './traffic-limit.guard';

/**
 * Ends a gRPC call's in-flight count when the handler is done (an HTTP call's ends with its
 * response, which the guard listens for itself).
 */
@Injectable()
export class RpcAdmissionRelease implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'rpc') return next.handle();
    const admission = context.switchToRpc().getContext<Record<symbol, Admission | undefined>>()[RPC_ADMISSION];
    return admission === undefined ? next.handle() : next.handle().pipe(finalize(admission.release));
  }
}

/**
 * The handler is proxied traffic of this route class: CONTRACT §9 limits run after authorization.
 * The releasing interceptor goes on gRPC handlers only (`{ rpc: true }`): any interceptor makes
 * Nest run an rxjs pipeline around every call of the route, which showed in the HTTP proxy's profile.
 */
export const LimitedAs = (routeClass: RouteClass, options: { rpc?: true } = {}) =>
  options.rpc === true
    ? applyDecorators(SetMetadata(ROUTE_CLASS, routeClass), UseGuards(TrafficLimitGuard), UseInterceptors(RpcAdmissionRelease))
    : applyDecorators(SetMetadata(ROUTE_CLASS, routeClass), UseGuards(TrafficLimitGuard));
