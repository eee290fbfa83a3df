<?php
// Copies PHP `files` sessions into sessiond, so switching the save handler
// logs nobody out. Safe to run again: sessions already in sessiond are left
// as they are.
//
//   php import_files.php SAVE_PATH [ADDRESS] [GC_MAXLIFETIME]
//
// SAVE_PATH is session.save_path's directory (for "N;/path" or
// "N;MODE;/path", give /path: the N levels of subdirectories are walked).
// ADDRESS defaults to tcp://127.0.0.1:6390, GC_MAXLIFETIME to the ini
// value. A session keeps the life it had left: GC_MAXLIFETIME minus the
// time since its file was last written; ones already past it are skipped.

declare(strict_types=1);

require_once __DIR__ . '/../src/autoload.php';

if ($argc < 2) {
    fwrite(STDERR, "usage: php import_files.php SAVE_PATH [ADDRESS] [GC_MAXLIFETIME]\n");
    exit(2);
}
$dir = $argv[1];
$client = new Sessiond\Client($argv[2] ?? 'tcp://127.0.0.1:6390');
$lifetime = (int) ($argv[3] ?? ini_get('session.gc_maxlifetime'));
if (!is_dir($dir) || $lifetime < 1) {
    fwrite(STDERR, "import_files.php: '$dir' is not a directory, or the lifetime is not positive\n");
    exit(2);
}

$counts = ['imported' => 0, 'present' => 0, 'expired' => 0, 'failed' => 0];
$files = new RecursiveIteratorIterator(new RecursiveDirectoryIterator($dir, FilesystemIterator::SKIP_DOTS));
foreach ($files as $file) {
    $name = $file->getFilename();
    if (!$file->isFile() || !str_starts_with($name, 'sess_')) {
        continue;
    }
    $id = substr($name, 5);
    $left = $lifetime - (time() - $file->getMTime());
    if ($left < 1) {
        $counts['expired']++;
        continue;
    }
    $data = @file_get_contents($file->getPathname());
    if ($data === false || $id === '') {
        fwrite(STDERR, "cannot read {$file->getPathname()}\n");
        $counts['failed']++;
        continue;
    }
    try {
        $client->create($id, null, $data === '' ? null : $data, $left);
        $counts['imported']++;
    } catch (Sessiond\ServerError $e) {
        if ($e->errorCode === 'EXISTS') {
            $counts['present']++;
        } else {
            fwrite(STDERR, "$id: {$e->getMessage()}\n");
            $counts['failed']++;
        }
    }
}
printf(
    "imported %d, already present %d, expired %d, failed %d\n",
    $counts['imported'],
    $counts['present'],
    $counts['expired'],
    $counts['failed'],
);
exit($counts['failed'] > 0 ? 1 : 0);
