/**
 * Every relative link and anchor in README.md and docs/*.md resolves, and so does every
 * `(docs/PAGE.md: "Heading")` reference in the comments of examples/. Anchors follow
 * GitHub's rules: the heading text in lower case, punctuation other than `-` and `_`
 * dropped, spaces turned into `-`, and `-1`, `-2`, ... appended to repeated headings.
 */
import { expect, test } from "bun:test";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { DOC_PAGES, readRepoFile, ROOT } from "./support/doc-pages.ts";

/** Markdown text outside fenced code blocks, with inline code spans blanked out. */
function proseOf(markdown: string): string[] {
  const lines: string[] = [];
  let inFence = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*```/.test(line)) {
      inFence = !inFence;
      lines.push("");
      continue;
    }
    lines.push(inFence ? "" : line.replace(/`[^`]*`/g, (span) => " ".repeat(span.length)));
  }

  return lines;
}

/** Converts a heading's text to its GitHub anchor, without the suffix of a repeated heading. */
function githubAnchor(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .trim()
    .toLowerCase();

  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "").replace(/ /g, "-");
}

/** Returns every anchor that the headings of a Markdown file define. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let inFence = false;
  for (const line of markdown.split("\n")) {
    if (/^\s*```/.test(line)) {
      inFence = !inFence;
      continue;
    }
    const heading = inFence ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading === null) {
      continue;
    }
    const base = githubAnchor(heading[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }

  return anchors;
}

interface Link {
  page: string;
  line: number;
  target: string;
}

/** Returns the relative links of a page: inline links `[text](target)`, without web addresses. */
function relativeLinks(page: string): Link[] {
  const links: Link[] = [];
  proseOf(readRepoFile(page)).forEach((text, index) => {
    for (const match of text.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = match[1]!;
      if (!/^[a-z][a-z0-9+.-]*:/i.test(target)) {
        links.push({ page, line: index + 1, target });
      }
    }
  });

  return links;
}

/** Returns why a link does not resolve, or undefined when it does. */
function brokenReason(link: Link): string | undefined {
  const [pathPart, anchor] = link.target.split("#", 2) as [string, string | undefined];
  const file = pathPart === "" ? link.page : normalize(join(dirname(link.page), decodeURIComponent(pathPart)));
  if (file.startsWith("..")) {
    return `${file} is outside the repository`;
  }
  if (!existsSync(join(ROOT, file))) {
    return `${file} does not exist`;
  }
  if (anchor === undefined) {
    return undefined;
  }
  if (!file.endsWith(".md") || statSync(join(ROOT, file)).isDirectory()) {
    return `${file} is not a Markdown page, so it has no anchor #${anchor}`;
  }
  if (!anchorsOf(readRepoFile(file)).has(anchor)) {
    return `${file} has no heading with anchor #${anchor}`;
  }

  return undefined;
}

test("githubAnchor follows GitHub's rules", () => {
  expect(githubAnchor("Admin API and `tinylb status`")).toBe("admin-api-and-tinylb-status");
  expect(githubAnchor("`slowStart` and `backends[].slowStart`")).toBe("slowstart-and-backendsslowstart");
  expect(githubAnchor("Client addresses for backends (PROXY protocol)")).toBe("client-addresses-for-backends-proxy-protocol");
  expect(githubAnchor("Reliability: faults, limits and bad input")).toBe("reliability-faults-limits-and-bad-input");
  expect(githubAnchor("snake_case and kebab-case")).toBe("snake_case-and-kebab-case");
});

test("anchorsOf numbers repeated headings", () => {
  const anchors = anchorsOf("# Title\n## Results\n```sh\n# not a heading\n```\n### Results\n");

  expect([...anchors]).toEqual(["title", "results", "results-1"]);
});

test.each(DOC_PAGES)("%s links resolve", (page) => {
  const broken = relativeLinks(page)
    .map((link) => ({ link, reason: brokenReason(link) }))
    .filter((entry) => entry.reason !== undefined)
    .map((entry) => `${entry.link.page}:${entry.link.line}: (${entry.link.target}) ${entry.reason}`);

  expect(broken).toEqual([]);
});

test("README links every docs page", () => {
  const linked = new Set(relativeLinks("README.md").map((link) => link.target.split("#")[0]));
  const pages = DOC_PAGES.filter((page) => page !== "README.md");

  expect(pages.filter((page) => !linked.has(page))).toEqual([]);
});

/** Returns the example files under examples/, as repository paths. */
function exampleFiles(folder = "examples"): string[] {
  return readdirSync(join(ROOT, folder), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? exampleFiles(join(folder, entry.name)) : [join(folder, entry.name)],
  );
}

test.each(exampleFiles())("%s names existing doc sections", (file) => {
  const text = readRepoFile(file);
  const broken: string[] = [];
  for (const match of text.matchAll(/\(((?:docs\/)?[\w.-]+\.md): "([^"]+)"\)/g)) {
    const [, page, heading] = match as unknown as [string, string, string];
    if (!existsSync(join(ROOT, page)) || !anchorsOf(readRepoFile(page)).has(githubAnchor(heading))) {
      broken.push(`${page}: "${heading}"`);
    }
  }
  // Section references in the old form, which named no page.
  for (const match of text.matchAll(/\(README: "([^"]+)"\)/g)) {
    if (!anchorsOf(readRepoFile("README.md")).has(githubAnchor(match[1]!))) {
      broken.push(`README.md: "${match[1]}"`);
    }
  }

  expect(broken).toEqual([]);
});
