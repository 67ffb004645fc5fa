"""The package's public surface is exactly __all__."""

import covalent_ecs_executor


def test_all_names_exist_and_nothing_public_is_missing():
    for name in covalent_ecs_executor.__all__:
        assert hasattr(covalent_ecs_executor, name), name
    public_classes = {
        name
        for name, value in vars(covalent_ecs_executor).items()
        if isinstance(value, type) and not name.startswith("_")
    }
    assert public_classes <= set(covalent_ecs_executor.__all__)


def test_plugin_module_is_registered_with_covalent():
    import covalent.executor as covalent_executor

    from covalent_ecs_executor.ecs import ECSExecutor

    assert covalent_executor._executor_manager.executor_plugins_map["ecs"] is ECSExecutor
