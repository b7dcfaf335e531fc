// The Liquid sandbox every template goes through, and the compile-once / render-many API.
//
// Safety comes from liquidjs's own options, not from filtering template text:
// - strictVariables / strictFilters: an unknown variable or filter is an error, never a blank;
// - ownPropertyOnly: only own properties of the merge context are readable (no `constructor`,
//   `__proto__`, prototype methods), and the context holds plain data only (see merge-context.ts);
// - no file system: `fs` refuses every read and the include / render / layout tags are replaced by
//   tags that refuse to parse, so nothing is ever loaded from disk;
// - no globals: the context is the only scope (no process, env or config is ever passed in);
// - bounded work: parseLimit (characters), renderLimit (ms per render) and memoryLimit (allocations)
//   stop loop bombs and string doubling; rendered parts are also capped in size.
import {
  type FS,
  Liquid,
  type LiquidOptions,
  Tag,
  type TagToken,
  type Template,
  type TopLevelToken,
} from 'liquidjs';
import { AppError, type ErrorDetail, invalid } from '../errors.ts';

/** Source limits, checked before parsing so the author gets a clear message. */
export const TEMPLATE_LIMITS = {
  subject: 1_000,
  html: 500_000,
  text: 200_000,
  /** Per rendered part (characters). */
  output: 5_000_000,
} as const;

const refuse = (): never => {
  throw new Error('templates cannot read files');
};
/** A file system that has no files: liquidjs never touches the disk. */
const noFiles: FS = {
  exists: async () => false,
  existsSync: () => false,
  readFile: async () => refuse(),
  readFileSync: refuse,
  resolve: (_dir, file) => file,
  contains: async () => false,
  containsSync: () => false,
};

export const LIQUID_OPTIONS: LiquidOptions = {
  strictVariables: true,
  strictFilters: true,
  ownPropertyOnly: true,
  jsTruthy: false,
  relativeReference: false,
  dynamicPartials: false,
  root: [],
  partials: [],
  layouts: [],
  fs: noFiles,
  globals: {},
  cache: false,
  // A 500 KB source, ~1 ms per render of a real template: the limits are 100× above real use.
  parseLimit: 2_000_000,
  renderLimit: 250,
  memoryLimit: 16_000_000,
};

/** Replaces include / render / layout: refusing at parse time gives the author a save-time error. */
class NoFileTag extends Tag {
  constructor(token: TagToken, remain: TopLevelToken[], liquid: Liquid) {
    super(token, remain, liquid);
    throw new Error(`{% ${token.name} %} is not available in templates (they cannot load other files)`);
  }
  *render(): Generator<unknown, void, unknown> {}
}

function sandboxed(options: LiquidOptions): Liquid {
  const engine = new Liquid(options);
  for (const name of ['include', 'render', 'layout']) engine.registerTag(name, NoFileTag);
  return engine;
}

/** Renders subjects and plain-text bodies: merge values are written as they are. */
export const textEngine = sandboxed(LIQUID_OPTIONS);
/** Renders HTML bodies: every output is HTML-escaped (a merge value cannot inject markup). */
export const htmlEngine = sandboxed({ ...LIQUID_OPTIONS, outputEscape: 'escape' });

export type TemplatePart = 'subject' | 'html' | 'text';

/** What a template version holds for sending: Liquid sources (html already CSS-inlined). */
export interface TemplateSource {
  subject: string;
  /** Null, absent or '' for a text-only message. */
  html?: string | null;
  text: string;
}

/** A template version parsed once; render it for each recipient with renderCompiled. */
export interface CompiledTemplate {
  readonly source: Readonly<TemplateSource>;
  readonly subject: Template[];
  readonly html: Template[] | null;
  readonly text: Template[];
}

export interface RenderedTemplate {
  subject: string;
  /** Null when the template has no HTML part. */
  html: string | null;
  text: string;
}

/** The merge context: plain data only (objects, arrays, strings, numbers, booleans, null). */
export type MergeContext = Record<string, unknown>;

/** "line 3, col 7" from a liquidjs error message, when it has one. */
function where(err: unknown): string {
  const m = /line:(\d+), col:(\d+)/.exec(String((err as Error)?.message ?? ''));
  return m ? ` (line ${m[1]}, column ${m[2]})` : '';
}

/** The message of a liquidjs error without its own position suffix and source excerpt. */
export function liquidMessage(err: unknown): string {
  const msg = String((err as Error)?.message ?? err)
    .split('\n')[0]
    .replace(/, line:\d+, col:\d+$/, '');
  // liquidjs quotes the values involved, and a merge value can be 100 KB long.
  const short = msg.length > 300 ? `${msg.slice(0, 299)}…` : msg;
  return `${short}${where(err)}`;
}

function parsePart(engine: Liquid, part: TemplatePart, source: string): Template[] {
  if (typeof source !== 'string')
    throw invalid(`The ${part} must be text`, [{ path: part, message: 'must be text' }]);
  if (source.length > TEMPLATE_LIMITS[part])
    throw invalid(`The ${part} is longer than ${TEMPLATE_LIMITS[part]} characters`, [
      { path: part, message: 'too long' },
    ]);
  try {
    return engine.parse(source);
  } catch (err) {
    throw invalid(`The ${part} is not a valid template: ${liquidMessage(err)}`, [
      { path: part, message: liquidMessage(err) },
    ]);
  }
}

/**
 * Parses a version's subject, HTML and text once. Throws validation_failed (with the part and the
 * line) when a part is not valid Liquid or uses include/render/layout.
 */
export function compileTemplate(version: TemplateSource): CompiledTemplate {
  // A text-only version stores html '' (the column is NOT NULL): it has no HTML part.
  const html = version.html ? version.html : null;
  return {
    source: { subject: version.subject, html, text: version.text },
    subject: parsePart(textEngine, 'subject', version.subject),
    html: html === null ? null : parsePart(htmlEngine, 'html', html),
    text: parsePart(textEngine, 'text', version.text),
  };
}

// A subject is one header line: line breaks and other control characters from merge values become
// single spaces (header injection is impossible, and the subject reads as one line).
// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are the point
const SUBJECT_SPACE = /[\s\u0000-\u001f\u007f\u0085\u2028\u2029]+/g;

export const cleanSubject = (s: string) => s.replace(SUBJECT_SPACE, ' ').trim();

function renderError(part: TemplatePart, err: unknown): AppError {
  const detail: ErrorDetail = { path: part, message: liquidMessage(err) };
  return new AppError('validation_failed', `The ${part} could not be merged: ${detail.message}`, [detail]);
}

function capped(part: TemplatePart, out: unknown): string {
  const s = String(out ?? '');
  if (s.length > TEMPLATE_LIMITS.output)
    throw invalid(`The merged ${part} is longer than ${TEMPLATE_LIMITS.output} characters`, [
      { path: part, message: 'merged result too long' },
    ]);
  return s;
}

// The top level is copied per render: {% increment %} and {% decrement %} write to it, and one
// context object may serve many renders (the same owner, sender and org for every recipient).
const fresh = (context: MergeContext): MergeContext => ({ ...context });

/** Renders a compiled template; throws validation_failed naming the part when merging fails. */
export async function renderCompiled(
  compiled: CompiledTemplate,
  context: MergeContext,
): Promise<RenderedTemplate> {
  const one = async (engine: Liquid, part: TemplatePart, tpl: Template[]) => {
    try {
      return capped(part, await engine.render(tpl, fresh(context)));
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw renderError(part, err);
    }
  };
  return {
    subject: cleanSubject(await one(textEngine, 'subject', compiled.subject)),
    html: compiled.html ? await one(htmlEngine, 'html', compiled.html) : null,
    text: await one(textEngine, 'text', compiled.text),
  };
}

/** The synchronous form of renderCompiled (same result; for hot loops that cannot await). */
export function renderCompiledSync(compiled: CompiledTemplate, context: MergeContext): RenderedTemplate {
  const one = (engine: Liquid, part: TemplatePart, tpl: Template[]) => {
    try {
      return capped(part, engine.renderSync(tpl, fresh(context)));
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw renderError(part, err);
    }
  };
  return {
    subject: cleanSubject(one(textEngine, 'subject', compiled.subject)),
    html: compiled.html ? one(htmlEngine, 'html', compiled.html) : null,
    text: one(textEngine, 'text', compiled.text),
  };
}
