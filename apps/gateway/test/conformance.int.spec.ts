import { useTestSuite } from './support/conformance.ts';
import { describeEveryRecordResource } from './support/record-resources.ts';

/**
 * Every record resource keeps the same REST, tenancy and event conventions (the entries are in
 * support/record-resources.ts: a new aggregate joins with one entry there).
 */
describeEveryRecordResource(useTestSuite());
