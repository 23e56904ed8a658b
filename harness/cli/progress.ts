// Progress for the long steps (image build, boot), on stderr so --json output stays clean.
export type Progress = (message: string) => void;

export function stderrProgress(enabled: boolean): Progress {
  const start = Date.now();
  return (message) => {
    if (!enabled) return;
    const t = ((Date.now() - start) / 1000).toFixed(1).padStart(6);
    process.stderr.write(`[dmahil ${t}s] ${message}\n`);
  };
}
