import { describe, expect, it } from '@jest/globals';
import type { EntityManager } from '../persistence/database.ts';
import { EventHandlerRegistrationError, indexEventHandlers, onEvent, PoisonEventError } from './consumer.ts';
import type { ReceivedEvent } from './event.ts';

const json = { decode: (b: Uint8Array): { n: number } => JSON.parse(new TextDecoder().decode(b)) as { n: number } };
const noop = async (): Promise<void> => undefined;

function event(type: string, body: string): ReceivedEvent {
  return {
    id: '0190b4a0-0000-7000-8000-000000000001',
    subject: type,
    type,
    source: '/test',
    organizationId: '0190b4a0-0000-7000-8000-000000000002',
    time: new Date(0),
    data: new TextEncoder().encode(body),
    headers: {},
    deliveryCount: 1,
  };
}

describe('indexEventHandlers', () => {
  it('indexes handlers by event type', () => {
    const a = onEvent('crm.x.a.created', json, noop);
    const b = onEvent('crm.x.b.created', json, noop);
    const index = indexEventHandlers('c', [a, b]);
    expect(index.get('crm.x.a.created')).toBe(a);
    expect(index.get('crm.x.b.created')).toBe(b);
    expect(index.get('crm.x.c.created')).toBeUndefined();
  });

  it('refuses two handlers for one type', () => {
    const register = () => indexEventHandlers('c', [onEvent('crm.x.a.created', json, noop), onEvent('crm.x.a.created', json, noop)]);
    expect(register).toThrow(EventHandlerRegistrationError);
    expect(register).toThrow('consumer c registers two handlers for crm.x.a.created');
  });

  it('refuses an empty handler list and an empty type', () => {
    expect(() => indexEventHandlers('c', [])).toThrow(EventHandlerRegistrationError);
    expect(() => indexEventHandlers('c', [onEvent('', json, noop)])).toThrow(EventHandlerRegistrationError);
  });
});

describe('onEvent', () => {
  it('decodes the body once and applies the message with the transaction and the event', async () => {
    const seen: unknown[] = [];
    const handler = onEvent('crm.x.a.created', json, async (em, message, e) => {
      seen.push(em, message.n, e.id);
    });
    const em = {} as EntityManager; // identity only: the effect passes it through
    const received = event('crm.x.a.created', '{"n":7}');
    await handler.decode(received)(em);
    expect(seen).toEqual([em, 7, received.id]);
  });

  it('turns an undecodable body into a PoisonEventError before anything is applied', () => {
    let applied = false;
    const handler = onEvent('crm.x.a.created', json, async () => {
      applied = true;
    });
    expect(() => handler.decode(event('crm.x.a.created', 'not json'))).toThrow(PoisonEventError);
    expect(() => handler.decode(event('crm.x.a.created', 'not json'))).toThrow(/^undecodable crm\.x\.a\.created: /);
    expect(applied).toBe(false);
  });
});
