// Text that goes into a RegExp literally: a path, a kernel release such as "6.12.118+deb13-amd64".
// The metacharacters of MDN's escapeRegExp: the result is valid with and without the u flag.
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
