<?php

/**
 * The msession_* functions of PHP's old msession extension, in plain PHP,
 * on sessiond. A legacy application keeps its code and adds one line:
 *
 *     require '/path/to/sessiond/clients/php/msession.php';
 *     msession_connect('127.0.0.1', '6390');
 *
 * Signatures are the extension's. As there, a function called before
 * msession_connect() returns false, and a failure raises a warning and
 * returns false (or null where the extension did). Nothing is defined if
 * the real extension is loaded.
 *
 * msession_listvar() returns, as documented, [value => session id] for the
 * sessions having the variable: sessions sharing a value appear once per
 * value (msession_find() lists them all).
 * msession_uniq() never makes an id shorter than 22 characters (128 bits).
 * msession_plugin($session, $val, $param) calls the plugin function named
 * $val with $param (docs/plugins.md).
 */

declare(strict_types=1);

require_once __DIR__ . '/src/autoload.php';

if (!function_exists('msession_connect')) {
    /** @internal the connection msession_connect() opened */
    final class MSessionConnection
    {
        public static ?Sessiond\Client $client = null;

        /** Runs `$f` on the connection; false (with a warning) when it fails or there is none. */
        public static function run(string $function, callable $f): mixed
        {
            if (self::$client === null) {
                trigger_error("$function(): not connected; call msession_connect() first", E_USER_WARNING);
                return false;
            }
            try {
                return $f(self::$client);
            } catch (Sessiond\Error $e) {
                trigger_error("$function(): {$e->getMessage()}", E_USER_WARNING);
                return false;
            }
        }
    }

    /** Connect to the session server. */
    function msession_connect($host, $port)
    {
        $client = new Sessiond\Client("tcp://$host:$port");
        try {
            $client->ping();
        } catch (Sessiond\Error $e) {
            trigger_error("msession_connect(): {$e->getMessage()}", E_USER_WARNING);
            return false;
        }
        MSessionConnection::$client = $client;
        return true;
    }

    /** Close the connection (and release its locks). */
    function msession_disconnect()
    {
        MSessionConnection::$client?->disconnect();
        MSessionConnection::$client = null;
    }

    /** How many sessions there are. */
    function msession_count()
    {
        return MSessionConnection::run(__FUNCTION__, fn ($c) => $c->count());
    }

    /** Create a session; false if the id is taken. */
    function msession_create($session, $classname = '', $data = '')
    {
        return MSessionConnection::run(__FUNCTION__, function ($c) use ($session, $classname, $data) {
            $c->create((string) $session, $classname === '' ? null : (string) $classname, $data === '' ? null : (string) $data);
            return true;
        });
    }

    /** Destroy a session. */
    function msession_destroy($name)
    {
        return MSessionConnection::run(__FUNCTION__, function ($c) use ($name) {
            $c->destroy((string) $name);
            return true;
        });
    }

    /** The ids of every session whose variable `name` equals `value`. */
    function msession_find($name, $value)
    {
        return MSessionConnection::run(__FUNCTION__, fn ($c) => $c->find((string) $name, (string) $value));
    }

    /** Every variable of a session, as name => value. */
    function msession_get_array($session)
    {
        return MSessionConnection::run(__FUNCTION__, fn ($c) => $c->getAll((string) $session));
    }

    /** The session's unstructured data. */
    function msession_get_data($session)
    {
        return MSessionConnection::run(__FUNCTION__, fn ($c) => $c->getData((string) $session));
    }

    /** A variable of a session, or `value` when it has none. */
    function msession_get($session, $name, $value)
    {
        return MSessionConnection::run(
            __FUNCTION__,
            fn ($c) => $c->get((string) $session, (string) $name, (string) $value)
        );
    }

    /** Add one to an integer variable; returns the new value as a string. */
    function msession_inc($session, $name)
    {
        return MSessionConnection::run(__FUNCTION__, fn ($c) => (string) $c->inc((string) $session, (string) $name));
    }

    /** Every session id. */
    function msession_list()
    {
        return MSessionConnection::run(__FUNCTION__, fn ($c) => $c->list());
    }

    /**
     * The sessions having a variable `name`, as documented: value => session
     * id (one session per value; msession_find() lists every session of a
     * value). Sorted by session id, so which one a shared value shows is
     * stable.
     */
    function msession_listvar($name)
    {
        return MSessionConnection::run(__FUNCTION__, function ($c) use ($name) {
            $bySession = $c->listVar((string) $name);
            ksort($bySession, SORT_STRING);
            $byValue = [];
            foreach ($bySession as $session => $value) {
                $byValue[$value] ??= (string) $session;
            }
            return $byValue;
        });
    }

    /**
     * Lock a session, waiting (server-side, up to 30 s) for another
     * holder; returns the key msession_unlock() takes.
     */
    function msession_lock($name)
    {
        return MSessionConnection::run(__FUNCTION__, fn ($c) => $c->lock((string) $name, 'write', 30_000));
    }

    /**
     * Call the plugin function named `val` on the session with `param`
     * (docs/plugins.md): what it returns, numbers as strings.
     */
    function msession_plugin($session, $val, $param = '')
    {
        return MSessionConnection::run(__FUNCTION__, function ($c) use ($session, $val, $param) {
            $r = $c->plugin((string) $session, (string) $val, (string) $param);
            return is_int($r) ? (string) $r : $r;
        });
    }

    /** A random string of `param` characters. */
    function msession_randstr($param)
    {
        return MSessionConnection::run(__FUNCTION__, fn ($c) => $c->randstr((int) $param));
    }

    /** Set many variables from name => value. */
    function msession_set_array($session, $tuples)
    {
        MSessionConnection::run(__FUNCTION__, fn ($c) => $c->setAll((string) $session, (array) $tuples));
    }

    /** Replace the session's unstructured data. */
    function msession_set_data($session, $value)
    {
        return MSessionConnection::run(__FUNCTION__, function ($c) use ($session, $value) {
            $c->setData((string) $session, (string) $value);
            return true;
        });
    }

    /** Set a variable. */
    function msession_set($session, $name, $value)
    {
        return MSessionConnection::run(__FUNCTION__, function ($c) use ($session, $name, $value) {
            $c->set((string) $session, (string) $name, (string) $value);
            return true;
        });
    }

    /** The session's timeout in seconds; with `param`, set it first. */
    function msession_timeout($session, $param = null)
    {
        return MSessionConnection::run(
            __FUNCTION__,
            fn ($c) => $c->timeout((string) $session, $param === null ? null : (int) $param)
        );
    }

    /** Create a session with a new random id of `param` characters (at least 22); returns the id. */
    function msession_uniq($param, $classname = '', $data = '')
    {
        return MSessionConnection::run(__FUNCTION__, fn ($c) => $c->uniq(
            max(22, (int) $param),
            $classname === '' ? null : (string) $classname,
            $data === '' ? null : (string) $data,
        ));
    }

    /** Release the lock msession_lock() returned `key` for; returns the key, or false. */
    function msession_unlock($session, $key)
    {
        return MSessionConnection::run(__FUNCTION__, function ($c) use ($session, $key) {
            $c->unlock((string) $session, (int) $key);
            return (int) $key;
        });
    }
}
