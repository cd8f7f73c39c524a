import type { BackgroundWorker, Logger, Orm } from '@crm/platform';
import { createBlobStore, type BlobStore, type BlobStoreConfig } from './blob-store.ts';
import { S3BlobStore } from './s3-blob-store.ts';

/**
 * Starts the blob sweep in this process: {@link BlobStore.sweep} of the configured store once
 * right away, then every `config.BLOB_SWEEP_INTERVAL_MS` after the previous sweep ended (none
 * with 0). Safe with every replica sweeping (rows are taken `for update skip locked`). A failed
 * sweep is logged and retried at the next tick. `stop()` cancels the next tick, waits for a
 * running sweep and closes the store's client.
 */
export function startBlobSweepWorker(deps: { orm: Orm; logger: Logger; config: BlobStoreConfig }): BackgroundWorker {
  const intervalMs = deps.config.BLOB_SWEEP_INTERVAL_MS;
  const store: BlobStore = createBlobStore(deps);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const tick = (): void => {
    timer = undefined;
    running = store
      .sweep()
      .then(
        (removed) => {
          if (removed > 0) deps.logger.info({ removed }, 'blobs that belonged to nobody removed');
        },
        (err: unknown) => deps.logger.error({ err }, 'blob sweep failed'),
      )
      .finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(tick, intervalMs).unref();
      });
  };
  if (intervalMs > 0) timer = setTimeout(tick, 0).unref();
  return {
    name: 'blob-sweep',
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
      if (store instanceof S3BlobStore) store.destroy();
    },
  };
}
