import { applyDecorators, SetMetadata, UseGuards } from '@nestjs/common';
import { ROUTE_CLASS, type RouteClass } from './route-class';
import { TrafficLimitGuard } from './traffic-limit.guard';

/** The handler is proxied traffic of this route class: CONTRACT §9 limits run after authorization. */
export const LimitedAs = (routeClass: RouteClass) => applyDecorators(SetMetadata(ROUTE_CLASS, routeClass), UseGuards(TrafficLimitGuard));
