import { describe } from '@jest/globals';
import { useTestSuite } from './support/conformance.ts';
import { describeEveryRecordResource } from './support/record-resources.ts';

/**
 * The conformance battery of every record resource against two contacts-svc replicas booted at
 * the same time on one database and one NATS, the gateway balancing round robin over both: two
 * replicas behave as one (issue 6 §3).
 */
describe('conformance against two contacts-svc replicas', () => {
  describeEveryRecordResource(useTestSuite({ contactsReplicas: 2 }));
});
