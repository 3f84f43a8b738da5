import { Module } from '@nestjs/common';
import { InFlightCounter } from './in-flight.counter';
import { TokenBucketStorage } from './token-bucket.storage';

/** The state of the limits (buckets, in-flight counts), one instance per process, handed to the throttler. */
@Module({
  providers: [TokenBucketStorage, InFlightCounter],
  exports: [TokenBucketStorage, InFlightCounter],
})
export class LimitsStorageModule {}
