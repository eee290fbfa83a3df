<?php
// Sessiond\Client against a real sessiond. Usage: php client_test.php ADDRESS

declare(strict_types=1);

require __DIR__ . '/../src/autoload.php';
require __DIR__ . '/check.php';

use Sessiond\Client;
use Sessiond\ServerError;

$a = new Client($argv[1]);
$b = new Client($argv[1]);
check($a->ping(), 'ping');

$id = $a->uniq(null, null, 'user|i:7;', 600);
same(32, strlen($id), 'uniq length');
same('7', $a->get($id, 'user'), 'PHP-encoded data reads as variables');
$a->setAll($id, ['x' => 1, 'y' => 'two']);
same(['x' => '1', 'y' => 'two', 'user' => '7'], $a->getAll($id), 'getAll');
same(true, $a->del($id, 'x'), 'del');
same(5, $a->inc($id, 'n', 5), 'inc');
same([$id], $a->find('y', 'two'), 'find');
same([$id => 'two'], $a->listVar('y'), 'listVar');
same(600, $a->timeout($id), 'timeout');
check($a->ttl($id) > 590, 'ttl');

// A server error carries its code, and the connection goes on.
try {
    $a->create($id);
    check(false, 'create of a taken id must throw');
} catch (ServerError $e) {
    same('EXISTS', $e->errorCode, 'error code');
}

// Blocking locks: b waits in the server's queue while a holds the lock.
$key = $a->lock($id, 'write', 0);
$t = microtime(true);
try {
    $b->lock($id, 'write', 200);
    check(false, 'a held lock must refuse b');
} catch (ServerError $e) {
    same('LOCKED', $e->errorCode, 'locked');
}
check(microtime(true) - $t >= 0.19, 'b waited its 200 ms');
$a->unlock($id, $key);

// OPEN + CLOSE: lock and read, then write and unlock.
$s = $b->open($id, 'write', 1000);
same('user|i:7;', $s['data'], 'open data');
$b->close($id, $s['key'], 'user|i:8;', ['seen' => 'yes']);
same('8', $a->get($id, 'user'), 'closed data');
same('yes', $a->get($id, 'seen'), 'closed vars');

// A lock dies with its connection.
$s = $b->open($id, 'write', 0);
$b->disconnect();
$key = $a->lock($id, 'write', 2000);
$a->unlock($id, $key);

$new = $a->regenerate($id);
check(!$a->exists($id) && $a->exists($new), 'regenerate');
$a->destroy($new);
same(false, $a->exists($new), 'destroy');
echo "ok\n";
