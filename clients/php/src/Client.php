<?php

declare(strict_types=1);

namespace Sessiond;

/**
 * A connection to sessiond's native protocol (RESP) over
 * stream_socket_client: one method per SESSION.* command, plus call() and
 * pipeline() for anything else. Nothing beyond what php-cli ships.
 *
 *     $c = new Sessiond\Client('tcp://127.0.0.1:6390');
 *     $id = $c->uniq();
 *     $c->set($id, 'user_id', '42');
 *     $c->find('user_id', '42');   // [$id]
 *
 * On a server with users, give the user and password: every connection
 * logs in (AUTH) as soon as it opens.
 *
 *     $c = new Sessiond\Client('tcp://10.0.0.5:6390', user: 'shop', password: 's3cret');
 *
 * The connection opens on first use. Locks belong to the connection: if the
 * process dies, the server releases them.
 */
final class Client
{
    /** @var resource|null */
    private $stream = null;

    /**
     * @param string $address `tcp://host:port` (or `host:port`)
     * @param float $timeout seconds to connect, and to wait for a reply
     *                       (a lock wait adds its own WAIT on top)
     * @param string|null $user log in as this user (null with a password:
     *                          the user named default)
     * @param string|null $password log in with this password (null: do not
     *                              log in)
     */
    public function __construct(
        private string $address = 'tcp://127.0.0.1:6390',
        private float $timeout = 5.0,
        private ?string $user = null,
        #[\SensitiveParameter] private ?string $password = null,
    ) {
        if (!str_contains($this->address, '://')) {
            $this->address = 'tcp://' . $this->address;
        }
    }

    public function __destruct()
    {
        $this->disconnect();
    }

    /** Closes the connection (and so releases this connection's locks). */
    public function disconnect(): void
    {
        if ($this->stream !== null) {
            @fclose($this->stream);
            $this->stream = null;
        }
    }

    /**
     * Sends one command and returns its reply: string, int, null, or a
     * list. A server error is thrown as ServerError.
     */
    public function call(string|int ...$args): mixed
    {
        return self::unwrap($this->pipeline([$args])[0]);
    }

    /**
     * Sends several commands in one write and returns their replies in
     * order; a server error is returned (not thrown) as a ServerError in
     * its place, so one failure does not hide the others.
     *
     * @param list<list<string|int>> $commands
     * @return list<mixed>
     */
    public function pipeline(array $commands, int $extraWaitMs = 0): array
    {
        $out = '';
        foreach ($commands as $args) {
            $out .= '*' . count($args) . "\r\n";
            foreach ($args as $a) {
                $a = (string) $a;
                $out .= '$' . strlen($a) . "\r\n" . $a . "\r\n";
            }
        }
        $stream = $this->stream();
        $seconds = $this->timeout + $extraWaitMs / 1000;
        stream_set_timeout($stream, (int) $seconds, (int) (fmod($seconds, 1.0) * 1e6));
        $this->write($stream, $out);
        $replies = [];
        foreach ($commands as $_) {
            $replies[] = $this->readReply($stream);
        }
        return $replies;
    }

    // --- sessions -----------------------------------------------------

    /** SESSION.CREATE: fails with EXISTS if the id is taken. */
    public function create(string $id, ?string $class = null, ?string $data = null, ?int $timeout = null): void
    {
        $this->call('SESSION.CREATE', $id, ...self::options(['CLASS' => $class, 'DATA' => $data, 'TIMEOUT' => $timeout]));
    }

    /** SESSION.UNIQ: a new session with a fresh random id (22-256 characters). */
    public function uniq(?int $len = null, ?string $class = null, ?string $data = null, ?int $timeout = null): string
    {
        return $this->call('SESSION.UNIQ', ...self::options(['LEN' => $len, 'CLASS' => $class, 'DATA' => $data, 'TIMEOUT' => $timeout]));
    }

    public function destroy(string $id): void
    {
        $this->call('SESSION.DESTROY', $id);
    }

    public function exists(string $id): bool
    {
        return $this->call('SESSION.EXISTS', $id) === 1;
    }

    /** SESSION.INFO as an associative array. */
    public function info(string $id): array
    {
        return self::pairs($this->call('SESSION.INFO', $id));
    }

    public function count(?string $class = null): int
    {
        return $this->call('SESSION.COUNT', ...self::options(['CLASS' => $class]));
    }

    /** @return list<string> every session id (of a class) */
    public function list(?string $class = null): array
    {
        return $this->call('SESSION.LIST', ...self::options(['CLASS' => $class]));
    }

    // --- variables and data --------------------------------------------

    public function get(string $id, string $name, ?string $default = null): ?string
    {
        return $this->call('SESSION.GET', $id, $name, ...self::options(['DEFAULT' => $default]));
    }

    public function set(string $id, string $name, string $value): void
    {
        $this->call('SESSION.SET', $id, $name, $value);
    }

    /** @return bool whether the variable was there */
    public function del(string $id, string $name): bool
    {
        return $this->call('SESSION.DEL', $id, $name) === 1;
    }

    /** @return array<string, string> every variable */
    public function getAll(string $id): array
    {
        return self::pairs($this->call('SESSION.GETALL', $id));
    }

    /** @param array<string, string|int> $vars */
    public function setAll(string $id, array $vars): void
    {
        if ($vars === []) {
            return;
        }
        $args = ['SESSION.SETALL', $id];
        foreach ($vars as $name => $value) {
            $args[] = (string) $name;
            $args[] = (string) $value;
        }
        $this->call(...$args);
    }

    public function getData(string $id): string
    {
        return $this->call('SESSION.GETDATA', $id);
    }

    public function setData(string $id, string $data): void
    {
        $this->call('SESSION.SETDATA', $id, $data);
    }

    /** SESSION.INC: adds `by` to an integer variable; returns the sum. */
    public function inc(string $id, string $name, int $by = 1): int
    {
        return $this->call('SESSION.INC', $id, $name, 'BY', $by);
    }

    /** @return list<string> ids of the sessions whose `name` is `value` */
    public function find(string $name, string $value): array
    {
        return $this->call('SESSION.FIND', $name, $value);
    }

    /** @return array<string, string> session id => value of `name` */
    public function listVar(string $name): array
    {
        return self::pairs($this->call('SESSION.LISTVAR', $name));
    }

    // --- time ------------------------------------------------------------

    /** Reads the idle timeout (seconds), or sets it when `seconds` is given. */
    public function timeout(string $id, ?int $seconds = null): int
    {
        if ($seconds === null) {
            return $this->call('SESSION.TIMEOUT', $id);
        }
        $this->call('SESSION.TIMEOUT', $id, $seconds);
        return $seconds;
    }

    public function ttl(string $id): int
    {
        return $this->call('SESSION.TTL', $id);
    }

    public function touch(string $id): void
    {
        $this->call('SESSION.TOUCH', $id);
    }

    // --- locks -------------------------------------------------------------

    /**
     * SESSION.LOCK: waits up to `waitMs` (server-side, woken the moment the
     * lock is free) and returns the fencing key.
     */
    public function lock(string $id, string $mode = 'write', int $waitMs = 0, ?int $leaseMs = null): int
    {
        $args = ['SESSION.LOCK', $id, 'MODE', $mode, 'WAIT', $waitMs, ...self::options(['LEASE' => $leaseMs])];
        return self::unwrap($this->pipeline([$args], $waitMs)[0]);
    }

    public function unlock(string $id, int $key): void
    {
        $this->call('SESSION.UNLOCK', $id, $key);
    }

    public function commit(string $id, int $key): void
    {
        $this->call('SESSION.COMMIT', $id, $key);
    }

    /**
     * SESSION.OPEN: lock and read in one round trip.
     *
     * @return array{key: int, data: string, vars: array<string, string>}
     */
    public function open(string $id, string $mode = 'write', int $waitMs = 0, ?int $leaseMs = null, bool $create = false): array
    {
        return self::opened(self::unwrap($this->pipeline([self::openArgs($id, $mode, $waitMs, $leaseMs, $create)], $waitMs)[0]));
    }

    /**
     * SESSION.CLOSE: write the data and/or variables, then unlock, in one
     * round trip.
     *
     * @param array<string, string|int> $vars
     */
    public function close(string $id, int $key, ?string $data = null, array $vars = []): void
    {
        $this->call(...self::closeArgs($id, $key, $data, $vars));
    }

    /** SESSION.REGENERATE: renames the session; returns the new id. */
    public function regenerate(string $id, ?string $newId = null): string
    {
        return $this->call('SESSION.REGENERATE', $id, ...($newId === null ? [] : [$newId]));
    }

    /**
     * Runs the plugin function `name` on the session with `params`, all or
     * nothing (docs/plugins.md); what the function returns.
     */
    public function plugin(string $id, string $name, string ...$params): mixed
    {
        return $this->call('SESSION.PLUGIN', $id, $name, ...$params);
    }

    public function randstr(int $len): string
    {
        return $this->call('SESSION.RANDSTR', $len);
    }

    public function ping(): bool
    {
        return $this->call('PING') === 'PONG';
    }

    // --- helpers for the session handler ---------------------------------

    /** @internal The arguments of SESSION.OPEN. */
    public static function openArgs(string $id, string $mode, int $waitMs, ?int $leaseMs, bool $create): array
    {
        $args = ['SESSION.OPEN', $id, 'MODE', $mode, 'WAIT', $waitMs, ...self::options(['LEASE' => $leaseMs])];
        if ($create) {
            $args[] = 'CREATE';
        }
        return $args;
    }

    /** @internal The arguments of SESSION.CLOSE. */
    public static function closeArgs(string $id, int $key, ?string $data, array $vars): array
    {
        $args = ['SESSION.CLOSE', $id, $key, ...self::options(['DATA' => $data])];
        if ($vars !== []) {
            $args[] = 'SET';
            foreach ($vars as $name => $value) {
                $args[] = (string) $name;
                $args[] = (string) $value;
            }
        }
        return $args;
    }

    /** @internal A SESSION.OPEN reply as an array. */
    public static function opened(array $reply): array
    {
        return ['key' => $reply[0], 'data' => $reply[1], 'vars' => self::pairs($reply[2])];
    }

    /** Throws a ServerError reply; passes anything else through. */
    public static function unwrap(mixed $reply): mixed
    {
        if ($reply instanceof ServerError) {
            throw $reply;
        }
        return $reply;
    }

    // --- the wire ------------------------------------------------------------

    /** @return resource */
    private function stream()
    {
        if ($this->stream === null) {
            $errno = 0;
            $errstr = '';
            $s = @stream_socket_client($this->address, $errno, $errstr, $this->timeout);
            if ($s === false) {
                throw new ConnectionError("cannot connect to sessiond at {$this->address}: $errstr ($errno)");
            }
            $this->stream = $s;
            if ($this->password !== null) {
                $auth = $this->user === null ? ['AUTH', $this->password] : ['AUTH', $this->user, $this->password];
                try {
                    self::unwrap($this->pipeline([$auth])[0]);
                } catch (\Throwable $e) {
                    $this->disconnect();
                    throw $e;
                }
            }
        }
        return $this->stream;
    }

    /** @param resource $stream */
    private function write($stream, string $bytes): void
    {
        while ($bytes !== '') {
            $n = @fwrite($stream, $bytes);
            if ($n === false || $n === 0) {
                $this->disconnect();
                throw new ConnectionError("writing to sessiond at {$this->address} failed");
            }
            $bytes = substr($bytes, $n);
        }
    }

    /** @param resource $stream */
    private function line($stream): string
    {
        $line = fgets($stream);
        if ($line === false || !str_ends_with($line, "\r\n")) {
            $timedOut = stream_get_meta_data($stream)['timed_out'] ?? false;
            $this->disconnect();
            throw new ConnectionError($timedOut
                ? "sessiond at {$this->address} did not answer in time"
                : "sessiond at {$this->address} closed the connection");
        }
        return substr($line, 0, -2);
    }

    /** @param resource $stream */
    private function exact($stream, int $len): string
    {
        $data = '';
        while (strlen($data) < $len) {
            $chunk = fread($stream, $len - strlen($data));
            if ($chunk === false || $chunk === '') {
                $this->disconnect();
                throw new ConnectionError("sessiond at {$this->address} closed the connection mid-reply");
            }
            $data .= $chunk;
        }
        return $data;
    }

    /** @param resource $stream */
    private function readReply($stream): mixed
    {
        $line = $this->line($stream);
        $rest = substr($line, 1);
        switch ($line[0] ?? '') {
            case '+':
                return $rest;
            case '-':
                [$code, $message] = array_pad(explode(' ', $rest, 2), 2, '');
                return new ServerError($code, $message);
            case ':':
                return (int) $rest;
            case '$':
                $len = (int) $rest;
                if ($len < 0) {
                    return null;
                }
                $data = $this->exact($stream, $len + 2);
                return substr($data, 0, $len);
            case '*':
                $n = (int) $rest;
                if ($n < 0) {
                    return null;
                }
                $items = [];
                for ($i = 0; $i < $n; $i++) {
                    $items[] = self::unwrap($this->readReply($stream));
                }
                return $items;
            default:
                $this->disconnect();
                throw new ConnectionError("unexpected reply from sessiond: " . substr($line, 0, 80));
        }
    }

    /** Flat [k, v, k, v] to [k => v]. */
    private static function pairs(array $flat): array
    {
        $out = [];
        for ($i = 0; $i + 1 < count($flat); $i += 2) {
            $out[(string) $flat[$i]] = $flat[$i + 1];
        }
        return $out;
    }

    /** Optional `NAME value` arguments, skipping nulls. */
    private static function options(array $named): array
    {
        $args = [];
        foreach ($named as $name => $value) {
            if ($value !== null) {
                $args[] = $name;
                $args[] = (string) $value;
            }
        }
        return $args;
    }
}
