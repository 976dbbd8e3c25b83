// Starting the real `formaops` binary for the browser suites: `serve` on a free loopback
// port, on an SQLite file in `workdir`, with the admin below and the zero-config mock provider.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = process.env.FORMAOPS_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, 'target'), 'debug', 'formaops');
export const EMAIL = 'admin@example.com';
export const PASSWORD = 'console e2e password';

export function startServer(workdir) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['serve', '--bind', '127.0.0.1:0'], {
      cwd: workdir,
      env: {
        ...process.env,
        // SQLAlchemy's convention: sqlite:/// + an absolute path (four slashes).
        DATABASE_URL: `sqlite:///${path.join(workdir, 'console.db')}`,
        FORMAOPS_ADMIN_EMAIL: EMAIL,
        FORMAOPS_ADMIN_PASSWORD: PASSWORD,
        RUST_LOG: 'warn',
        OPENAI_API_KEY: '',
        OPENAI_BASE_URL: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => reject(new Error(`formaops did not start in 60 s:\n${stderr}`)), 60_000);
    child.stdout.on('data', (d) => {
      const m = /formaops listening on (\S+)/.exec(String(d));
      if (m) {
        clearTimeout(timer);
        resolve({ child, base: m[1], stderr: () => stderr });
      }
    });
    child.on('exit', (code) => reject(new Error(`formaops exited (${code}):\n${stderr}`)));
  });
}
