<?php
// Drives PHP's own session machinery against sessiond from the command line,
// with whatever session.save_handler the ini settings on the command line
// choose. One action per run, as one web request would:
//
//   php session_cli.php write ID NAME VALUE   -> prints the session id
//   php session_cli.php read ID NAME          -> prints the value (or NULL)
//   php session_cli.php incr ID TIMES [HOLD_MS] -> TIMES locked read-modify-writes
//   php session_cli.php destroy ID
//   php session_cli.php regenerate ID         -> prints the new id
//   php session_cli.php start ID              -> prints the id PHP ended up using

ini_set('session.use_cookies', '0');
ini_set('session.use_only_cookies', '0');
ini_set('session.cache_limiter', '');

function open_session(string $id): void
{
    session_id($id);
    if (!session_start()) {
        fwrite(STDERR, "session_start failed\n");
        exit(2);
    }
}

[$script, $action, $id] = array_pad($argv, 3, '');
switch ($action) {
    case 'write':
        open_session($id);
        $_SESSION[$argv[3]] = is_numeric($argv[4]) ? (int) $argv[4] : $argv[4];
        session_write_close();
        echo session_id(), "\n";
        break;
    case 'read':
        open_session($id);
        $value = $_SESSION[$argv[3]] ?? null;
        session_write_close();
        echo $value === null ? 'NULL' : $value, "\n";
        break;
    case 'incr':
        // TIMES increments, each holding the session HOLD_MS; a start or a
        // write that fails is counted, not fatal (the contention tests
        // compare how many fail).
        $hold = (int) ($argv[4] ?? 0);
        $failed = 0;
        for ($i = 0; $i < (int) $argv[3]; $i++) {
            session_id($id);
            if (!@session_start()) {
                $failed++;
                continue;
            }
            $_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
            if ($hold > 0) {
                usleep($hold * 1000);
            }
            if (!@session_write_close()) {
                $failed++;
            }
        }
        echo $failed === 0 ? "done\n" : "done failed=$failed\n";
        break;
    case 'destroy':
        open_session($id);
        session_destroy();
        echo "destroyed\n";
        break;
    case 'regenerate':
        open_session($id);
        session_regenerate_id(true);
        $new = session_id();
        session_write_close();
        echo $new, "\n";
        break;
    case 'start':
        open_session($id);
        $used = session_id();
        session_write_close();
        echo $used, "\n";
        break;
    default:
        fwrite(STDERR, "unknown action '$action'\n");
        exit(2);
}
