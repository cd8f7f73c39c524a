import http from 'node:http';
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { contactsV1 } from '@crm/contracts';
import { serverOptions } from '@crm/platform';

/**
 * Stub upstream of `npm run bench`: a grpc-js server implementing `crm.contacts.v1.CompanyService`
 * that answers every call at once with one fixed company (no database, no token check), so a
 * gateway pointed at it measures the gateway's own cost per request. gRPC on 127.0.0.1:`GRPC_PORT`,
 * readiness on `http://127.0.0.1:<OPS_PORT>/readyz`.
 */
const now = new Date('2026-01-01T00:00:00Z');
const company: contactsV1.Company = contactsV1.Company.fromPartial({
  id: '0190b4a0-0000-7000-8000-000000000001',
  name: 'Stub Company',
  domain: 'stub.example',
  industry: 'software',
  parentCompanyId: '',
  employees: 42,
  annualRevenue: { amount: '1250000.00', currency: 'USD' },
  address: undefined,
  ownerId: 'stub-owner',
  audit: { createTime: now, updateTime: now, createdBy: 'stub-owner', version: '1' },
});

type Handler = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => void;
const answer =
  (response: unknown): Handler =>
  (_call, callback) =>
    callback(null, response);
const implementation: UntypedServiceImplementation = {
  createCompany: answer({ company }),
  getCompany: answer({ company }),
  listCompanies: answer({ companies: [company], nextPageToken: '' }),
  updateCompany: answer({ company }),
  deleteCompany: answer({}),
};

// the services' channel settings (channelz off), so the stub costs what a service's gRPC layer costs
const server = new Server(serverOptions());
server.addService(contactsV1.CompanyServiceService, implementation);
new HealthImplementation({ '': 'SERVING' }).addToServer(server);
server.bindAsync(`127.0.0.1:${process.env['GRPC_PORT'] ?? '0'}`, ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  http.createServer((_req, res) => res.end('{"status":"ready"}')).listen(Number(process.env['OPS_PORT'] ?? 0), '127.0.0.1');
});
process.once('SIGTERM', () => process.exit(0));
