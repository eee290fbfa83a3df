<?php

declare(strict_types=1);

namespace Sessiond;

/**
 * PHP's session storage in sessiond, with a server-side blocking lock:
 * one round trip to read (SESSION.OPEN: lock + read, waiting in the
 * server's queue and woken the moment the previous request unlocks) and one
 * to write (SESSION.CLOSE: write + unlock). No polling. If PHP dies
 * mid-request, its connection closes and the server releases the lock.
 *
 *     Sessiond\SessionHandler::register(new Sessiond\Client('tcp://127.0.0.1:6390'));
 *     session_start();
 *
 * Honours session.use_strict_mode (an id the server does not know is
 * replaced: validateId), session.lazy_write (an unchanged session is not
 * rewritten: updateTimestamp) and session.gc_maxlifetime (the session's
 * timeout; the server expires sessions itself, so gc() does nothing).
 */
final class SessionHandler implements \SessionHandlerInterface, \SessionIdInterface, \SessionUpdateTimestampHandlerInterface
{
    /** The session this request holds the lock of, and its fencing key. */
    private ?string $lockedId = null;
    private ?int $key = null;

    /**
     * @param int $lockWaitMs how long a request waits for the session's lock
     *                        before session_start() fails
     * @param int|null $leaseMs how long the lock lasts if never released
     *                          (server default: 30 s); make it longer than
     *                          your slowest request
     */
    public function __construct(
        private Client $client,
        private int $lockWaitMs = 30_000,
        private ?int $leaseMs = null,
    ) {
    }

    /** Creates a handler and installs it with session_set_save_handler(). */
    public static function register(Client $client, int $lockWaitMs = 30_000, ?int $leaseMs = null): self
    {
        $handler = new self($client, $lockWaitMs, $leaseMs);
        session_set_save_handler($handler, true);
        return $handler;
    }

    public function open(string $path, string $name): bool
    {
        return true;
    }

    public function close(): bool
    {
        if ($this->key === null) {
            return true;
        }
        // The request ends without writing (session_abort, or a failed
        // write): just let the next request in.
        [$id, $key] = [$this->lockedId, $this->key];
        $this->forget();
        return $this->attempt(fn () => $this->client->unlock($id, $key), 'release the lock of');
    }

    public function read(string $id): string|false
    {
        try {
            [$opened, $timeout] = $this->client->pipeline([
                Client::openArgs($id, 'write', $this->lockWaitMs, $this->leaseMs, true),
                ['SESSION.TIMEOUT', $id, self::lifetime()],
            ], $this->lockWaitMs);
            $opened = Client::opened(Client::unwrap($opened));
            Client::unwrap($timeout);
        } catch (Error $e) {
            trigger_error("sessiond: cannot open session '$id': {$e->getMessage()}", E_USER_WARNING);
            return false;
        }
        $this->lockedId = $id;
        $this->key = $opened['key'];
        return $opened['data'];
    }

    public function write(string $id, string $data): bool
    {
        return $this->finish($id, $data);
    }

    /** Lazy write: the data did not change, so only unlock (OPEN already refreshed it). */
    public function updateTimestamp(string $id, string $data): bool
    {
        return $this->finish($id, null);
    }

    public function destroy(string $id): bool
    {
        if ($this->lockedId === $id) {
            // Destroying a session drops its lock too.
            $this->forget();
        }
        return $this->attempt(function () use ($id) {
            try {
                $this->client->destroy($id);
            } catch (ServerError $e) {
                if ($e->errorCode !== 'NOSESSION') {
                    throw $e;
                }
            }
        }, 'destroy');
    }

    public function gc(int $max_lifetime): int|false
    {
        return 0;
    }

    /**
     * A new id: 128 bits from the CSPRNG, in PHP's id alphabet. It is not
     * created on the server here: in strict mode PHP's
     * session_regenerate_id() asks for ids until validateId() says one is
     * unknown, so a created one would be asked for again (and leak). The
     * session comes to exist when it is read.
     */
    public function create_sid(): string
    {
        return bin2hex(random_bytes(16));
    }

    /** Strict mode: only ids the server knows are accepted. */
    public function validateId(string $id): bool
    {
        try {
            return $this->client->exists($id);
        } catch (Error $e) {
            trigger_error("sessiond: cannot check session '$id': {$e->getMessage()}", E_USER_WARNING);
            return false;
        }
    }

    /** SESSION.CLOSE with `data` (null: nothing to write), locking first if this request holds no lock on `id`. */
    private function finish(string $id, ?string $data): bool
    {
        return $this->attempt(function () use ($id, $data) {
            if ($this->lockedId !== $id || $this->key === null) {
                $opened = $this->client->open($id, 'write', $this->lockWaitMs, $this->leaseMs, true);
                [$this->lockedId, $this->key] = [$id, $opened['key']];
            }
            $key = $this->key;
            $this->forget();
            $this->client->close($id, $key, $data);
        }, 'write');
    }

    private function forget(): void
    {
        $this->lockedId = null;
        $this->key = null;
    }

    private function attempt(callable $f, string $what): bool
    {
        try {
            $f();
            return true;
        } catch (Error $e) {
            trigger_error("sessiond: cannot $what the session: {$e->getMessage()}", E_USER_WARNING);
            return false;
        }
    }

    private static function lifetime(): int
    {
        return max(1, (int) ini_get('session.gc_maxlifetime'));
    }
}
