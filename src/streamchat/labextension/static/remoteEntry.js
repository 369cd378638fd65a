// streamchat's JupyterLab mime extension, hand-written (no bundler, no build step).
//
// Why: a chat's output holds the widget view and a static copy of the conversation
// (text/html, see streamchat/_static_copy.py). JupyterLab picks one renderer per
// output by rank, and the widget view's (rank -10) beats text/html in any trusted
// notebook, including a saved one reopened, whose widget model no longer exists:
// the reader gets "Error displaying widget: model not found" instead of the
// conversation. So the output also carries `application/vnd.streamchat.chat+json`,
// ranked before the widget view: its renderer shows the widget when its model
// exists, else the saved copy (and the widget if its model appears later, when a
// reloaded page reconnects to a kernel that still has it). It leans on two details
// of @jupyter-widgets/jupyterlab-manager 5 (a renderer's `_manager` promise, and
// the manager given to the renderers of its class): tests/browser check them.
//
// How JupyterLab loads it: a federated extension is a script that defines
// `window._JUPYTERLAB[name]` with `init(shareScope)` then `get(module)`, a promise
// of a factory of the module (https://jupyterlab.readthedocs.io/en/latest/extension/extension_dev.html#prebuilt-extensions).
// ipywidgets' renderer comes from the page's shared modules, as a bundled
// extension's would.
(function () {
  "use strict";

  const WIDGET = "application/vnd.jupyter.widget-view+json";
  const CHAT = "application/vnd.streamchat.chat+json";
  let shared = null;

  /** A module the page shares (JupyterLab shares its core packages, one version each). */
  async function load(name) {
    const versions = (shared && shared[name]) || {};
    const entries = Object.values(versions);
    const entry = entries.find((each) => each.loaded) || entries[0];
    if (!entry) throw new Error(`streamchat: the page does not share ${name}`);
    return (await entry.get())();
  }

  /** The rendermime registry of the output area `widget` sits in (the notebook's). */
  function outputRendermime(widget) {
    let parent = widget.parent;
    while (parent && !parent.rendermime) parent = parent.parent;
    return parent ? parent.rendermime : null;
  }

  /** Whether `widget` is in a notebook (JupyterLab, Notebook 7): a panel with a session. */
  function inNotebook(widget) {
    let parent = widget.parent;
    while (parent && !parent.sessionContext) parent = parent.parent;
    return Boolean(parent);
  }

  /** The ipywidgets manager the notebook's own widget renderers get, once it has one. */
  function managerOf(rendermime) {
    if (!rendermime || !rendermime.getFactory(WIDGET)) return new Promise(() => {});
    const renderer = rendermime.createRenderer(WIDGET);
    const found = renderer._manager ? renderer._manager.promise : new Promise(() => {});
    renderer.dispose(); // only asked: its signal connections go with it
    return found;
  }

  const nextTask = () => new Promise((resolve) => setTimeout(() => resolve(null), 0));

  // A subclass of ipywidgets' own renderer, so the notebook's widget manager hands it
  // the manager as it does to its own renderers (it looks for them by class).
  function makeRenderer(WidgetRenderer) {
    return class ChatRenderer extends WidgetRenderer {
      constructor(options) {
        super({ ...options, mimeType: WIDGET });
        this.addClass("streamchat-output");
        this.stopWaiting = () => {};
      }

      async renderModel(model) {
        // The output area adds this renderer to itself right after calling renderModel.
        await Promise.resolve();
        const rendermime = outputRendermime(this);
        const view = model.data[WIDGET];
        if (!view) return this.showCopy(rendermime, model);
        // Elsewhere (Voila renders a notebook's outputs as an app, never a saved one):
        // the host's own widget renderer, as if this extension were not there.
        if (!inNotebook(this)) return this.showHostWidget(rendermime, model);
        // The same chat again: the kernel updates the output at each turn end (its
        // saved copy). ipywidgets' renderer would draw a new view, losing what the
        // person is typing, the focus and the scroll; the view shown stays.
        if (this.shownModel === view.model_id && this.widgets.length) return undefined;
        const found = this.findManager(rendermime);
        // A live chat (its cell just ran): the manager and the model are there at once.
        let manager = await Promise.race([found, nextTask()]);
        if (manager && manager.has_model(view.model_id)) return this.showWidget(model);
        await this.showCopy(rendermime, model);
        // With no kernel at all there is never a manager: the copy stays.
        manager = manager || (await found);
        this.widgetOnceLoaded(manager, view.model_id, model);
        return undefined;
      }

      /** The notebook's ipywidgets manager: outputs drawn before the notebook had one
       * get it from it (it looks for renderers by class), later ones from the
       * notebook's renderer factory. */
      async findManager(rendermime) {
        let given = false;
        const own = this._manager.promise.then((manager) => {
          given = true;
          return manager;
        });
        const manager = await Promise.race([own, managerOf(rendermime)]);
        if (!given) this.manager = manager; // what super.renderModel waits for
        return manager;
      }

      /** The widget in place of the copy once its model exists: a reloaded page whose
       * kernel still holds it (the manager restores models from the kernel). */
      widgetOnceLoaded(manager, modelId, model) {
        const show = () => {
          if (this.isDisposed || !manager.has_model(modelId)) return false;
          this.stopWaiting();
          for (const child of [...this.widgets]) child.dispose();
          void this.showWidget(model);
          return true;
        };
        if (show() || manager.restoredStatus) return;
        manager.restored.connect(show);
        this.stopWaiting = () => manager.restored.disconnect(show);
      }

      async showWidget(model) {
        await super.renderModel(model);
        this.shownModel = model.data[WIDGET].model_id;
      }

      showHostWidget(rendermime, model) {
        if (!rendermime || !rendermime.getFactory(WIDGET)) return this.showCopy(rendermime, model);
        const widget = rendermime.createRenderer(WIDGET);
        this.addWidget(widget);
        return widget.renderModel(model);
      }

      /** The conversation as saved: the output's text/html, sanitized by JupyterLab. */
      async showCopy(rendermime, model) {
        const html = model.data["text/html"];
        if (!rendermime || !html) {
          this.node.textContent = String(model.data["text/plain"] || "");
          return;
        }
        const copy = rendermime.createRenderer("text/html");
        this.addWidget(copy);
        await copy.renderModel({
          trusted: false,
          data: { "text/html": html },
          metadata: {},
          setData() {},
        });
      }

      dispose() {
        if (this.isDisposed) return;
        this.stopWaiting();
        super.dispose();
      }
    };
  }

  /** The page's configuration (JupyterLab's PageConfig, read where it keeps it). */
  function pageConfig() {
    try {
      return JSON.parse(document.getElementById("jupyter-config-data").textContent);
    } catch {
      return {};
    }
  }

  const modules = {
    async "./mimeExtension"() {
      // Voila draws outputs outside any output area, so this renderer could not find the
      // host's widget renderer to hand the chat to; Voila shows running apps, never a
      // saved chat, so ipywidgets keeps the output there.
      if (/voila/i.test(String(pageConfig().appUrl || ""))) return [];
      let widgets;
      try {
        widgets = await load("@jupyter-widgets/jupyterlab-manager");
      } catch {
        return []; // no ipywidgets in this JupyterLab: nothing to stand in for
      }
      const ChatRenderer = makeRenderer(widgets.WidgetRenderer);
      return {
        id: "streamchat:chat",
        rendererFactory: {
          safe: false, // in an untrusted notebook the sanitized text/html is shown
          mimeTypes: [CHAT],
          createRenderer: (options) => new ChatRenderer(options),
        },
        rank: -20, // before the widget view's -10
        dataType: "json",
      };
    },
  };

  window._JUPYTERLAB = window._JUPYTERLAB || {};
  window._JUPYTERLAB.streamchat = {
    init(shareScope) {
      shared = shareScope;
    },
    async get(module) {
      if (!modules[module]) throw new Error(`streamchat: no module ${module}`);
      const value = await modules[module]();
      return () => ({ __esModule: true, default: value });
    },
  };
})();
