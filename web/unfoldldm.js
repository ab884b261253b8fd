// UnfoldLDM front-end extension: a before/after comparison slider on the "UnfoldLDM Restore" node.
// The MGDA node's kernel estimate is shown by ComfyUI's own image preview (the node returns it as
// a UI image). Only our node types are touched, so workflows without them are unaffected.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const RESTORE_NODE = "UnfoldLDMRestore";

function viewUrl(record) {
  const params = new URLSearchParams({
    filename: record.filename,
    subfolder: record.subfolder ?? "",
    type: record.type ?? "temp",
  });
  return api.apiURL(`/view?${params}`);
}

function buildCompare() {
  const root = document.createElement("div");
  root.className = "unfoldldm-compare";
  root.style.cssText = "position:relative;width:100%;height:100%;overflow:hidden;background:#111;";
  const before = document.createElement("img");
  const after = document.createElement("img");
  for (const img of [before, after]) {
    img.style.cssText = "position:absolute;inset:0;width:100%;height:100%;object-fit:contain;";
    root.appendChild(img);
  }
  before.alt = "input";
  after.alt = "restored";
  const slider = document.createElement("input");
  slider.type = "range";
  slider.min = "0";
  slider.max = "100";
  slider.value = "50";
  slider.title = "drag: left = input, right = restored";
  slider.style.cssText = "position:absolute;left:4%;width:92%;bottom:6px;z-index:2;";
  const clip = () => {
    after.style.clipPath = `inset(0 0 0 ${slider.value}%)`;
  };
  slider.addEventListener("input", clip);
  root.appendChild(slider);
  clip();
  return { root, before, after };
}

function showCompare(node, records) {
  if (!node.unfoldldmCompare) {
    const parts = buildCompare();
    node.addDOMWidget("unfoldldm_compare", "unfoldldm-compare", parts.root, { serialize: false });
    node.unfoldldmCompare = parts;
    node.setSize([Math.max(node.size[0], 320), Math.max(node.size[1], 360)]);
  }
  node.unfoldldmCompare.before.src = viewUrl(records[0]);
  node.unfoldldmCompare.after.src = viewUrl(records[1]);
  app.graph.setDirtyCanvas(true, true);
}

app.registerExtension({
  name: "UnfoldLDM.Compare",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== RESTORE_NODE) {
      return;
    }
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const records = message?.unfoldldm_compare;
      if (Array.isArray(records) && records.length >= 2) {
        showCompare(this, records);
      }
    };
  },
});
