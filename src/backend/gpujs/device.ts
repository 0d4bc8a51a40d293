/**
 * Open a WebGL context and wrap it, through gpu.js, in a GpujsBackend. gpu.js is not imported
 * here: the caller hands over its `GPU` class (a page's `window.GPU` from
 * gpu.js/dist/gpu-browser.min.js, or the npm package's export), so the library itself has no
 * dependency on it. Runtime-neutral, but it needs a canvas: a page's document or an
 * OffscreenCanvas (a worker).
 *
 * Only a real WebGL context is accepted. In Node, gpu.js would fall back to its CPU mode (its
 * headless-gl dependency needs a native build): that runs the kernels as plain JavaScript on
 * one core and is not offered as a GPU backend.
 */
import { GpujsBackend, type GpujsInstance } from './gpujs.js';

/** the `GPU` class of gpu.js, as far as this backend uses it */
export interface GpujsConstructor {
  new (settings: { canvas?: unknown; context?: unknown; mode?: string }): GpujsInstance;
}

export interface CreateGpujsOptions {
  /** a canvas to draw on (default: a new one from `document`, else an OffscreenCanvas) */
  canvas?: HTMLCanvasElement | OffscreenCanvas;
  /** 'webgl2' (default, falling back to 'webgl') or only 'webgl' */
  webgl?: 'webgl2' | 'webgl';
}

// WebGL enums (spec constants), so no WebGL globals are needed
const GL_RENDERER = 0x1f01;
const GL_MAX_TEXTURE_SIZE = 0x0d33;
const UNMASKED_RENDERER = 0x9246; // WEBGL_debug_renderer_info
/** renderers that rasterise on the CPU cores */
const SOFTWARE_RENDERER = /swiftshader|llvmpipe|lavapipe|softpipe|software/i;
/** gpu.js's own context settings for its kernels */
const CONTEXT_SETTINGS = { alpha: false, depth: false, antialias: false };

interface GL {
  getParameter(p: number): unknown;
  getExtension(name: string): unknown;
}

export function createGpujsBackend(GPU: GpujsConstructor, opts: CreateGpujsOptions = {}): GpujsBackend {
  const canvas = opts.canvas ?? newCanvas();
  const kinds = opts.webgl === 'webgl' ? ['webgl'] : ['webgl2', 'webgl'];
  let context: GL | null = null;
  let kind = '';
  for (const k of kinds) {
    context = (canvas as HTMLCanvasElement).getContext(k, CONTEXT_SETTINGS) as GL | null;
    if (context) {
      kind = k;
      break;
    }
  }
  if (!context) throw new Error(`WebGL: no ${kinds.join(' or ')} context on this canvas (gpu.js would run its CPU mode, which is not a GPU backend)`);
  if (kind === 'webgl2' && !context.getExtension('EXT_color_buffer_float')) {
    throw new Error('WebGL2: no EXT_color_buffer_float, so f32 textures cannot be rendered to');
  }
  if (kind === 'webgl' && !context.getExtension('OES_texture_float')) {
    throw new Error('WebGL: no OES_texture_float, so f32 textures are missing');
  }
  const gpu = new GPU({ canvas, context });
  const renderer = rendererName(context);
  return new GpujsBackend(gpu, {
    description: `${kind} ${renderer} (gpu.js)`,
    software: SOFTWARE_RENDERER.test(renderer),
    maxTextureSize: Number(context.getParameter(GL_MAX_TEXTURE_SIZE)),
  });
}

function newCanvas(): HTMLCanvasElement | OffscreenCanvas {
  const doc = (globalThis as { document?: Document }).document;
  if (doc) return doc.createElement('canvas');
  if (typeof OffscreenCanvas !== 'undefined') return new OffscreenCanvas(1, 1);
  throw new Error('WebGL: no canvas in this runtime (no document, no OffscreenCanvas); gpu.js would run its CPU mode, which is not a GPU backend');
}

/** the renderer's name: unmasked where the browser allows it */
function rendererName(gl: GL): string {
  const unmasked = gl.getExtension('WEBGL_debug_renderer_info') ? gl.getParameter(UNMASKED_RENDERER) : null;
  return String(unmasked ?? gl.getParameter(GL_RENDERER) ?? 'unknown renderer');
}
